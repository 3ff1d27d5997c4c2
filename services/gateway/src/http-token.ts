import { grants, type Scope } from "@otto/kit/caller";
import type { CredentialVerifier } from "@otto/kit/authorize";

// Who may use a plain HTTP route (cctray.xml, badges, artifact downloads):
// an API token holding `scope`, as a bearer token or as the password of
// HTTP Basic authentication. Undefined when the caller may; else the status
// and why not.
export async function refuseToken(
  credentials: CredentialVerifier,
  authorization: string | undefined,
  scope: Scope,
): Promise<{ status: 401 | 403; message: string } | undefined> {
  const token = tokenOf(authorization);
  if (!token) return { status: 401, message: `send an API token with ${scope}: as a bearer token, or as the password of HTTP Basic authentication` };
  const caller = await credentials.verify(token);
  if (!caller) return { status: 401, message: "the token is unknown, expired or revoked" };
  if (caller.kind !== "api" || !grants(caller.scopes, scope)) return { status: 403, message: `this needs an API token with ${scope}` };
  return undefined;
}

// The token of "Bearer T", or the password of "Basic base64(user:T)".
export function tokenOf(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
  if (!basic) return undefined;
  const pair = Buffer.from(basic[1], "base64").toString("utf8");
  const colon = pair.indexOf(":");
  return colon >= 0 && colon < pair.length - 1 ? pair.slice(colon + 1) : undefined;
}
