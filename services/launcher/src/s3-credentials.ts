import { randomBytes } from "node:crypto";
import { chmod, link, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

// The development S3 endpoint's key pair: random, made on the first start and
// kept in <dataDir>/s3.credentials (0600), so the object store and the
// services that sign for it share a key no one else can guess.
export interface S3Credentials {
  accessKey: string;
  secretKey: string;
}

export function s3CredentialsFile(dataDir: string): string {
  return join(dataDir, "s3.credentials");
}

export async function ensureS3Credentials(dataDir: string): Promise<S3Credentials> {
  const file = s3CredentialsFile(dataDir);
  const made = {
    accessKey: `OTTO${randomBytes(10).toString("hex").toUpperCase()}`,
    secretKey: randomBytes(30).toString("base64url"),
  };
  // Written whole under another name and linked into place, so a second
  // launcher never reads half a file and never replaces the first one's key.
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(made) + "\n", { mode: 0o600 });
  try {
    await link(tmp, file);
    return made;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  } finally {
    await rm(tmp, { force: true });
  }
  await chmod(file, 0o600);
  let kept: Partial<S3Credentials> = {};
  try {
    kept = JSON.parse(await readFile(file, "utf8")) as Partial<S3Credentials>;
  } catch (err) {
    if (!(err instanceof SyntaxError)) throw err;
  }
  if (typeof kept.accessKey !== "string" || !/^[A-Za-z0-9]{16,128}$/.test(kept.accessKey) || typeof kept.secretKey !== "string" || kept.secretKey.length < 16) {
    throw new Error(`${file} does not hold an S3 key pair ({"accessKey": ..., "secretKey": ...}); delete it to make a new one`);
  }
  return { accessKey: kept.accessKey, secretKey: kept.secretKey };
}
