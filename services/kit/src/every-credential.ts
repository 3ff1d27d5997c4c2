import type { CredentialVerifier } from "./authorize.ts";
import type { StepTokenVerifier } from "./step-token.ts";
import type { TaskTokenVerifier } from "./task-token.ts";

// Checks every kind of bearer token Otto hands out, for a server that takes
// them all (the gateway): task and step tokens by their signatures, API
// tokens and agent credentials in the database.
export function everyCredential(tokens: CredentialVerifier, tasks: TaskTokenVerifier, steps: StepTokenVerifier): CredentialVerifier {
  return {
    verify: (token) => tasks.verify(token) ?? steps.verify(token) ?? tokens.verify(token),
    isLiveId: tokens.isLiveId?.bind(tokens),
  };
}
