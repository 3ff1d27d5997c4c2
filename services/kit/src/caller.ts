import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { PeerIdentity } from "./peer-identity.ts";

// The kinds of Otto process that prove who they are with a certificate.
export const ottoServices = ["gateway", "parser", "registry", "coordinator", "objects"] as const;

// What each API token's scope grants is one rule, shared with the web UI.
export { grants, scopes, type Scope } from "@otto/contracts/scopes";
import type { Scope } from "@otto/contracts/scopes";

// Who is calling, once authenticated: another Otto process (by its
// certificate), a person or tool (API token), an agent (its credential), an
// agent acting for one task (a task token the coordinator signed), or a
// build step of one attempt (a step token the coordinator signed).
export type Caller =
  | { kind: "service"; service: string; name: string }
  | { kind: "api"; tokenId: string; name: string; scopes: Scope[] }
  | { kind: "agent"; tokenId: string; agentId: string }
  // artifactSources: the digest of the attempts whose artifacts it may read.
  | { kind: "task"; agentId: string; runId: string; job: string; attempt: number; artifactSources?: string }
  | { kind: "step"; runId: string; job: string; attempt: number }
  | { kind: "anyone" };

export const peerKey = createContextKey<PeerIdentity | undefined>(undefined, { description: "TLS peer identity" });
export const callerKey = createContextKey<Caller>({ kind: "anyone" }, { description: "authenticated caller" });

export function callerOf(context: HandlerContext): Caller {
  return context.values.get(callerKey);
}
