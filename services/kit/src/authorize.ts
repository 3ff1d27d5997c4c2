import { Code, ConnectError } from "@connectrpc/connect";
import { grants, type Caller, type Scope } from "./caller.ts";
import type { PeerIdentity } from "./peer-identity.ts";
import { isRetryable } from "./retryable.ts";

// What a method lets in: Otto processes of the given kinds (by certificate),
// API tokens holding a scope (or any API token), agents, tasks, build steps,
// or anyone (the method checks what it needs itself, e.g. a join token in
// the request).
export interface Access {
  services?: readonly string[];
  scope?: Scope;
  apiTokens?: boolean;
  agents?: boolean;
  tasks?: boolean;
  steps?: boolean;
  anyone?: boolean;
}

// Keyed by service type name, then method name or "*".
export type AccessRules = Record<string, Record<string, Access>>;

export interface CredentialVerifier {
  // The caller a bearer token stands for, or undefined when the token is
  // unknown, expired or revoked.
  verify(token: string): Promise<Caller | undefined> | Caller | undefined;
  // Whether the token with this id (a Caller's tokenId) is still neither
  // revoked nor expired; a verifier that can say lets streams end when it is.
  isLiveId?(id: string): Promise<boolean>;
}

// What admission looks at: the method called and who is calling, from the
// request's headers and TLS peer alone, so that it can run before a byte of
// the body is read.
export interface CallToAdmit {
  service: string;
  method: string;
  authorization: string | null;
  peer: PeerIdentity | undefined;
}

export type Admission = (call: CallToAdmit) => Promise<Caller>;

// Every call is refused unless a rule lets its caller in: methods without a
// rule are closed. Answers the caller, or throws unauthenticated or
// permission_denied.
export function admission(rules: AccessRules, credentials: CredentialVerifier | undefined): Admission {
  return async ({ service, method, authorization, peer }) => {
    const methods = rules[service];
    const access = methods?.[method] ?? methods?.["*"];
    const what = `${service.replace(/^otto\.v1\./, "")}.${method}`;
    if (!access) throw new ConnectError(`${what} cannot be called from outside Otto`, Code.PermissionDenied);
    // A call that carries a token is its holder's, even when an Otto process
    // passes it on (the gateway forwards agents' calls): the certificate
    // speaks only for the process's own calls.
    if (!authorization && peer && access.services?.includes(peer.kind)) return { kind: "service", service: peer.kind, name: peer.name };
    if (!authorization) {
      if (access.anyone) return { kind: "anyone" };
      throw new ConnectError(
        `${what} needs a token: send the header "Authorization: Bearer <token>" (an admin creates tokens with \`otto token create\`)`,
        Code.Unauthenticated,
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) throw new ConnectError('the Authorization header must be "Bearer <token>"', Code.Unauthenticated);
    const kind = tokenKindOf(match[1]);
    if (!access.anyone && kind && !accepts(access, kind)) throw new ConnectError(wrongKind(what, access, kind), Code.PermissionDenied);
    const caller = credentials ? await verify(credentials, match[1]) : undefined;
    if (!caller) throw new ConnectError("the token is unknown, expired or revoked", Code.Unauthenticated);
    if (!allows(access, caller)) throw new ConnectError(refusal(what, access, caller), Code.PermissionDenied);
    return caller;
  };
}

// A token that cannot be looked up because the database cannot be reached
// is neither good nor bad yet: the caller may try again.
async function verify(credentials: CredentialVerifier, token: string): Promise<Caller | undefined> {
  try {
    return await credentials.verify(token);
  } catch (err) {
    if (isRetryable(err)) throw new ConnectError("temporarily unavailable: the token cannot be checked now; try again", Code.Unavailable);
    throw err;
  }
}

type BearerKind = "api" | "agent" | "task" | "step";

const kindNames: Record<BearerKind, string> = { api: "an API token", agent: "an agent credential", task: "a task token", step: "a step token" };

function tokenKindOf(token: string): BearerKind | undefined {
  return /^otto_(api|agent|task|step)_/.exec(token)?.[1] as BearerKind | undefined;
}

function accepts(access: Access, kind: BearerKind): boolean {
  switch (kind) {
    case "api":
      return access.scope !== undefined || access.apiTokens === true;
    case "agent":
      return access.agents === true;
    case "task":
      return access.tasks === true;
    case "step":
      return access.steps === true;
  }
}

function wrongKind(what: string, access: Access, kind: BearerKind): string {
  const wanted = [access.apiTokens ? "an API token" : access.scope && `an API token with ${access.scope}`, access.agents && kindNames.agent, access.tasks && kindNames.task, access.steps && kindNames.step].filter(Boolean);
  if (wanted.length === 0) return `${what} is internal: only Otto's own processes may call it`;
  return `${what} takes ${wanted.join(" or ")}, not ${kindNames[kind]}`;
}

function allows(access: Access, caller: Caller): boolean {
  switch (caller.kind) {
    case "api":
      return access.anyone === true || access.apiTokens === true || (access.scope !== undefined && grants(caller.scopes, access.scope));
    case "agent":
      return access.anyone === true || access.agents === true;
    case "task":
      return access.tasks === true;
    case "step":
      return access.steps === true;
    default:
      return access.anyone === true;
  }
}

function refusal(what: string, access: Access, caller: Caller): string {
  if (caller.kind === "api" && access.scope) return `this token may not call ${what}: it needs the scope ${access.scope}`;
  const held = caller.kind === "api" ? "API token" : caller.kind === "task" || caller.kind === "step" ? `${caller.kind} token` : `${caller.kind} credential`;
  return `a ${held} may not call ${what}`;
}
