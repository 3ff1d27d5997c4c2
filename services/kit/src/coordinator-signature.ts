import { X509Certificate, createPrivateKey, sign, verify, type KeyObject } from "node:crypto";
import type { TlsFiles } from "./transport-security.ts";

// Tokens a coordinator hands out with a task (task-token.ts, step-token.ts)
// are signed with its own TLS key and carry its certificate, so a server
// checks them with nothing but the CA: no shared secret, no database lookup.

export interface CoordinatorSigner {
  // The signature of `message`, base64url.
  sign(message: Buffer): string;
  // The signer's certificate (DER), base64url.
  certificate: string;
}

export function coordinatorSigner(tls: TlsFiles): CoordinatorSigner {
  const key = createPrivateKey(tls.key);
  const certificate = new X509Certificate(tls.cert).raw.toString("base64url");
  return { sign: (message) => sign("sha256", message, key).toString("base64url"), certificate };
}

// Checks signatures made by coordinators whose certificates the CA issued.
export class CoordinatorSignatures {
  readonly #ca: X509Certificate;
  // Certificates already checked against the CA, by their encoding.
  readonly #signers = new Map<string, KeyObject | undefined>();

  constructor(ca: Buffer) {
    this.#ca = new X509Certificate(ca);
  }

  // Whether `signature` (base64url) is a current coordinator's, given with
  // its certificate (base64url DER), over `message`.
  verify(message: Buffer, signature: string, certificate: string): boolean {
    const key = this.#signer(certificate);
    return key !== undefined && verify("sha256", message, key, Buffer.from(signature, "base64url"));
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
