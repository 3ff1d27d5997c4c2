import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { AdminService, TokenInfoSchema, TokenKind, type TokenInfo } from "@otto/gen/v1/admin_service_pb";
import { scopes as knownScopes } from "@otto/kit/caller";
import { forwardCalls } from "@otto/kit/forward-calls";
import type { RegistryClient } from "@otto/kit/registry-client";
import { parseScopes, type TokenKind as StoredKind, type TokenInfo as StoredToken, type TokenStore } from "@otto/kit/token-store";

const namePattern = /^[\p{L}\p{N} ._@:/-]{1,100}$/u;

// Unknown kinds, and AGENT for CreateToken, are refused by the requests' rules.
const kindToStore: Record<TokenKind, StoredKind | undefined> = {
  [TokenKind.UNSPECIFIED]: undefined,
  [TokenKind.API]: "api",
  [TokenKind.JOIN]: "join",
  [TokenKind.AGENT]: "agent",
};
const kindFromStore: Record<StoredKind, TokenKind> = { api: TokenKind.API, join: TokenKind.JOIN, agent: TokenKind.AGENT };

const sweepTimeoutMs = 30 * 60_000;

// The public AdminService: tokens here; secrets at the coordinator, which
// alone holds the key that encrypts them, and retention sweeps, which the
// coordinator runs.
export function adminServiceImpl(tokens: TokenStore, registry: RegistryClient): ServiceImpl<typeof AdminService> {
  const coordinator = forwardCalls(registry, "coordinator", AdminService);
  return {
    async createToken(req) {
      const kind = kindToStore[req.kind] ?? "api";
      if (!namePattern.test(req.name)) {
        throw new ConnectError("name must be 1-100 letters, digits, spaces or . _ @ : / -, saying who or what the token is for", Code.InvalidArgument);
      }
      const scopes = parseScopes(req.scopes);
      if (kind === "api" && scopes.length === 0) {
        throw new ConnectError(`an API token needs at least one scope: ${knownScopes.join(", ")}`, Code.InvalidArgument);
      }
      if (kind === "join" && scopes.length > 0) throw new ConnectError("a join token has no scopes", Code.InvalidArgument);
      const { token, info } = await tokens.create(kind, req.name, scopes, req.ttlSeconds);
      return { token, info: toProto(info) };
    },
    async listTokens(req) {
      return { tokens: (await tokens.list(kindToStore[req.kind])).map(toProto) };
    },
    async revokeToken(req) {
      const [info] = await tokens.revoke({ id: req.id });
      if (!info) throw new ConnectError(`no token has the id ${req.id}`, Code.NotFound);
      return { info: toProto(info) };
    },
    async revokeAgent(req) {
      const revoked = await tokens.revoke({ agent: req.agentId });
      if (revoked.length === 0) throw new ConnectError(`agent ${req.agentId} has never joined`, Code.NotFound);
      return { credentials: revoked.map(toProto) };
    },
    setSecret: (req, ctx) => coordinator("setSecret", req, (c) => c.setSecret(req, { signal: ctx.signal })),
    listSecrets: (req, ctx) => coordinator("listSecrets", req, (c) => c.listSecrets(req, { signal: ctx.signal })),
    deleteSecret: (req, ctx) => coordinator("deleteSecret", req, (c) => c.deleteSecret(req, { signal: ctx.signal })),
    listAgents: (req, ctx) => coordinator("listAgents", req, (c) => c.listAgents(req, { signal: ctx.signal })),
    // A sweep may take a while (it waits for one under way, too); asked
    // again after a lost answer, it finds only what is left.
    sweepRetention: (req, ctx) => coordinator("sweepRetention", req, (c) => c.sweepRetention(req, { signal: ctx.signal, timeoutMs: sweepTimeoutMs })),
  };
}

export function toProto(info: StoredToken): TokenInfo {
  return create(TokenInfoSchema, {
    id: info.id,
    kind: kindFromStore[info.kind],
    name: info.name,
    scopes: info.scopes,
    createdAt: timestampFromDate(info.createdAt),
    expiresAt: info.expiresAt ? timestampFromDate(info.expiresAt) : undefined,
    revokedAt: info.revokedAt ? timestampFromDate(info.revokedAt) : undefined,
  });
}
