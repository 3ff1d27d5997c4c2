import { readFileSync } from "node:fs";
import { ConfigError } from "./config.ts";

type Env = Record<string, string | undefined>;

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

// TLS is on unless OTTO_INSECURE=1 says otherwise. A process serves with
// OTTO_TLS_CERT/OTTO_TLS_KEY and trusts the CA in OTTO_TLS_CA, both for the
// servers it calls and for the Otto processes that call it.
export type TransportSecurity = { insecure: true } | { insecure: false; tls: TlsFiles };

export function readTransportSecurity(env: Env): TransportSecurity {
  if (env.OTTO_INSECURE === "1" || env.OTTO_INSECURE === "true") return { insecure: true };
  const missing = ["OTTO_TLS_CERT", "OTTO_TLS_KEY", "OTTO_TLS_CA"].filter((name) => !env[name]);
  if (missing.length > 0) {
    throw new ConfigError(
      `${missing.join(", ")} not set: Otto serves TLS only. Give certificate, key and CA files ` +
        "(`npm start` makes a local CA under .otto/tls), or set OTTO_INSECURE=1 to serve plain HTTP",
    );
  }
  const read = (name: string) => {
    try {
      return readFileSync(env[name]!);
    } catch (err) {
      throw new ConfigError(`${name}: cannot read ${env[name]}: ${(err as Error).message}`);
    }
  };
  return { insecure: false, tls: { cert: read("OTTO_TLS_CERT"), key: read("OTTO_TLS_KEY"), ca: read("OTTO_TLS_CA") } };
}

// What every Otto server offers: TLS 1.3 (whose suites are all AEAD), and
// TLS 1.2 only with ECDHE key exchange and an AEAD cipher (AES-GCM or
// ChaCha20-Poly1305), never CBC with SHA-1; older versions not at all.
export const tlsServerOptions = {
  minVersion: "TLSv1.2",
  ciphers: [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
  ].join(":"),
  honorCipherOrder: true,
} as const;

export const insecureWarning =
  "OTTO_INSECURE is set: serving plain HTTP with no authentication. Anyone who can reach this port can do anything. Never use this outside a throwaway machine.";
