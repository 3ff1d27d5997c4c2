import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { AccountService } from "@otto/gen/v1/account_service_pb";
import { TokenInfoSchema, TokenKind } from "@otto/gen/v1/admin_service_pb";
import { callerOf, scopes } from "@otto/kit/caller";
import type { TokenStore } from "@otto/kit/token-store";
import { toProto } from "./admin-routes.ts";

// AccountService: who the caller's token is, for any API token.
export function accountServiceImpl(tokens: TokenStore): ServiceImpl<typeof AccountService> {
  return {
    async whoAmI(_req, ctx) {
      const caller = callerOf(ctx);
      // Without TLS nothing is authenticated, and everything is allowed.
      if (caller.kind === "anyone") {
        return { token: create(TokenInfoSchema, { kind: TokenKind.UNSPECIFIED, name: "anyone (Otto runs without TLS)", scopes: [...scopes] }) };
      }
      if (caller.kind !== "api") throw new ConnectError("WhoAmI answers for API tokens", Code.PermissionDenied);
      const info = await tokens.get(caller.tokenId);
      if (!info) throw new ConnectError("the token is unknown, expired or revoked", Code.Unauthenticated);
      return { token: toProto(info) };
    },
  };
}
