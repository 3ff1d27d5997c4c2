import type { CredentialVerifier } from "./authorize.ts";
import type { TaskTokenVerifier } from "./task-token.ts";

// Checks every kind of bearer token Otto hands out, for a server that takes
// them all (the gateway): task tokens by their signature, API tokens and
// agent credentials in the database.
export function everyCredential(tokens: CredentialVerifier, tasks: TaskTokenVerifier): CredentialVerifier {
  return {
    verify: (token) => tasks.verify(token) ?? tokens.verify(token),
    isLiveId: tokens.isLiveId?.bind(tokens),
  };
}
