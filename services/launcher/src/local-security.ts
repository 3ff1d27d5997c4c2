import { chmod, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createPool } from "@otto/kit/db";
import { ensureLocalCa, type LocalCa } from "@otto/kit/local-ca";
import { writeFileAtomically } from "@otto/kit/atomic-file";
import { TokenStore, type TokenKind } from "@otto/kit/token-store";
import type { Scope } from "@otto/kit/caller";

// What `npm start` sets up so that Otto is secure on one machine: a local CA
// and a certificate per process under <dataDir>/tls, a first admin token in
// <dataDir>/admin.token, a join token for its own agents, and the key that
// encrypts secrets. Everything is reused across restarts.
export interface LocalCertificates {
  ca: LocalCa;
  secretsKeyFile: string;
  // Environment for a process of this name and kind: its certificate (valid
  // for `hosts` too) and the CA.
  envFor(name: string, kind: string, hosts?: string[]): Promise<Record<string, string>>;
}

export async function prepareLocalSecurity(dataDir: string): Promise<LocalCertificates> {
  const ca = await ensureLocalCa(join(dataDir, "tls"));
  return {
    ca,
    secretsKeyFile: join(dataDir, "secrets.key"),
    async envFor(name, kind, hosts) {
      const files = await ca.issue(name, kind, hosts);
      return { OTTO_TLS_CERT: files.cert, OTTO_TLS_KEY: files.key, OTTO_TLS_CA: files.ca };
    },
  };
}

// Tokens kept in files (mode 0600) and reused while they are still live.
export async function ensureLocalTokens(dataDir: string, databaseUrl: string) {
  const pool = createPool(databaseUrl, { application: "otto-launcher", max: 2 });
  const store = new TokenStore(pool);
  try {
    await store.start();
    const adminTokenFile = join(dataDir, "admin.token");
    const adminToken = await ensureTokenFile(store, adminTokenFile, "api", "first admin (npm start)", ["admin"]);
    const joinToken = await ensureTokenFile(store, join(dataDir, "agent-join.token"), "join", "agents of npm start", []);
    return { adminToken, adminTokenFile, joinToken };
  } finally {
    await pool.end();
  }
}

async function ensureTokenFile(store: TokenStore, file: string, kind: TokenKind, name: string, scopes: Scope[]): Promise<string> {
  const kept = (await readFile(file, "utf8").catch(() => "")).trim();
  if (kept && (await store.isLive(kept, kind))) {
    await chmod(file, 0o600);
    return kept;
  }
  const { token } = await store.create(kind, name, scopes);
  await writeFileAtomically(file, token + "\n");
  return token;
}
