import type { Caller } from "./caller.ts";
import { CoordinatorSignatures, coordinatorSigner } from "./coordinator-signature.ts";
import type { TlsFiles } from "./transport-security.ts";

// A step token is what a job's steps get as OTTO_TOKEN: it lets them add
// jobs to their own run (RunService.AddJobs) while their attempt runs, and
// nothing else. The coordinator that hands out the task signs it as it signs
// the task token (coordinator-signature.ts), over the token's prefix and
// claims together, so neither kind of token passes for the other. Without
// TLS nothing is authenticated, and its claims are not signed.

export interface StepClaims {
  runId: string;
  job: string;
  attempt: number;
}

const prefix = "otto_step_";

// Signs with the coordinator's TLS key; without TLS, writes the claims unsigned.
export function createStepTokenSigner(tls: TlsFiles | undefined): (claims: StepClaims, ttlSeconds: number) => string {
  const signer = tls && coordinatorSigner(tls);
  return (claims, ttlSeconds) => {
    const payload = Buffer.from(JSON.stringify({ k: "step", r: claims.runId, j: claims.job, n: claims.attempt, e: Math.floor(Date.now() / 1000) + ttlSeconds }));
    const signed = `${prefix}${payload.toString("base64url")}`;
    return signer ? `${signed}.${signer.sign(Buffer.from(signed))}.${signer.certificate}` : signed;
  };
}

export class StepTokenVerifier {
  readonly #signatures: CoordinatorSignatures;

  constructor(ca: Buffer) {
    this.#signatures = new CoordinatorSignatures(ca);
  }

  verify(token: string): Caller | undefined {
    if (!token.startsWith(prefix)) return undefined;
    const [payloadText, signatureText, certificateText, ...rest] = token.slice(prefix.length).split(".");
    if (signatureText === undefined || certificateText === undefined || rest.length > 0) return undefined;
    if (!this.#signatures.verify(Buffer.from(`${prefix}${payloadText}`), signatureText, certificateText)) return undefined;
    const claims = claimsOf(payloadText);
    return claims && { kind: "step", ...claims };
  }
}

// The claims of a step token as they are written, unchecked: for an Otto
// that runs without TLS, where nothing is authenticated. `authorization`:
// the request's Authorization header.
export function unsignedStepClaims(authorization: string | null): StepClaims | undefined {
  const token = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "")?.[1];
  return token?.startsWith(prefix) ? claimsOf(token.slice(prefix.length).split(".")[0]) : undefined;
}

function claimsOf(payloadText: string): StepClaims | undefined {
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payloadText, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof claims !== "object" || claims === null) return undefined;
  const { k, r, j, n, e } = claims as Record<string, unknown>;
  if (k !== "step" || typeof r !== "string" || typeof j !== "string" || typeof n !== "number" || typeof e !== "number") return undefined;
  if (!(e * 1000 > Date.now())) return undefined;
  return { runId: r, job: j, attempt: n };
}
