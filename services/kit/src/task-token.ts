import { X509Certificate, createPrivateKey, sign, verify, type KeyObject } from "node:crypto";
import { artifactSourcesDigest, type ArtifactSource } from "./artifact-sources.ts";
import type { Caller } from "./caller.ts";
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
  const key = createPrivateKey(tls.key);
  const certificate = new X509Certificate(tls.cert).raw.toString("base64url");
  return (claims, ttlSeconds) => {
    const sources = claims.artifactSources?.length ? { a: artifactSourcesDigest(claims.artifactSources) } : {};
    const payload = Buffer.from(
      JSON.stringify({ g: claims.agentId, r: claims.runId, j: claims.job, n: claims.attempt, e: Math.floor(Date.now() / 1000) + ttlSeconds, ...sources }),
    );
    const signature = sign("sha256", payload, key);
    return `${prefix}${payload.toString("base64url")}.${signature.toString("base64url")}.${certificate}`;
  };
}

export class TaskTokenVerifier {
  readonly #ca: X509Certificate;
  // Certificates already checked against the CA, by their encoding.
  readonly #signers = new Map<string, KeyObject | undefined>();

  constructor(ca: Buffer) {
    this.#ca = new X509Certificate(ca);
  }

  verify(token: string): Caller | undefined {
    if (!token.startsWith(prefix)) return undefined;
    const parts = token.slice(prefix.length).split(".");
    if (parts.length !== 3) return undefined;
    const [payloadText, signatureText, certificateText] = parts;
    const key = this.#signer(certificateText);
    if (!key) return undefined;
    const payload = Buffer.from(payloadText, "base64url");
    if (!verify("sha256", payload, key, Buffer.from(signatureText, "base64url"))) return undefined;
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

  #signer(encoded: string): KeyObject | undefined {
    if (this.#signers.has(encoded)) return this.#signers.get(encoded);
    let key: KeyObject | undefined;
    try {
      const certificate = new X509Certificate(Buffer.from(encoded, "base64url"));
      const current = Date.parse(certificate.validFrom) <= Date.now() && Date.now() < Date.parse(certificate.validTo);
      const isCoordinator = (certificate.subjectAltName ?? "").split(", ").some((san) => san.startsWith("URI:spiffe://otto/coordinator/"));
      if (current && isCoordinator && certificate.checkIssued(this.#ca) && certificate.verify(this.#ca.publicKey)) key = certificate.publicKey;
    } catch {
      key = undefined;
    }
    if (this.#signers.size > 100) this.#signers.clear();
    this.#signers.set(encoded, key);
    return key;
  }
}
