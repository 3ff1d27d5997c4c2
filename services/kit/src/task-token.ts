import { artifactSourcesDigest, type ArtifactSource } from "./artifact-sources.ts";
import type { Caller } from "./caller.ts";
import { CoordinatorSignatures, coordinatorSigner } from "./coordinator-signature.ts";
import type { TlsFiles } from "./transport-security.ts";

// A task token lets one agent act for one attempt of one job, and nothing
// else: the coordinator that hands out the task signs it with its own TLS
// key and attaches its certificate, so the objects service can check it
// with nothing but the CA (no shared secret, no database lookup).

export interface TaskClaims {
  agentId: string;
  runId: string;
  job: string;
  attempt: number;
  // The attempts whose artifacts the task may read (artifact-sources.ts).
  artifactSources?: readonly ArtifactSource[];
}

const prefix = "otto_task_";

export function createTaskTokenSigner(tls: TlsFiles): (claims: TaskClaims, ttlSeconds: number) => string {
  const signer = coordinatorSigner(tls);
  return (claims, ttlSeconds) => {
    const sources = claims.artifactSources?.length ? { a: artifactSourcesDigest(claims.artifactSources) } : {};
    const payload = Buffer.from(
      JSON.stringify({ g: claims.agentId, r: claims.runId, j: claims.job, n: claims.attempt, e: Math.floor(Date.now() / 1000) + ttlSeconds, ...sources }),
    );
    return `${prefix}${payload.toString("base64url")}.${signer.sign(payload)}.${signer.certificate}`;
  };
}

export class TaskTokenVerifier {
  readonly #signatures: CoordinatorSignatures;

  constructor(ca: Buffer) {
    this.#signatures = new CoordinatorSignatures(ca);
  }

  verify(token: string): Caller | undefined {
    if (!token.startsWith(prefix)) return undefined;
    const parts = token.slice(prefix.length).split(".");
    if (parts.length !== 3) return undefined;
    const [payloadText, signatureText, certificateText] = parts;
    const payload = Buffer.from(payloadText, "base64url");
    if (!this.#signatures.verify(payload, signatureText, certificateText)) return undefined;
    let claims: { g: string; r: string; j: string; n: number; e: number; a?: string };
    try {
      claims = JSON.parse(payload.toString("utf8"));
    } catch {
      return undefined;
    }
    if (!(claims.e * 1000 > Date.now())) return undefined;
    const sources = typeof claims.a === "string" ? { artifactSources: claims.a } : {};
    return { kind: "task", agentId: claims.g, runId: claims.r, job: claims.j, attempt: claims.n, ...sources };
  }
}
