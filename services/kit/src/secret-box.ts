import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { writeFile } from "node:fs/promises";

// Secrets at rest: AES-256-GCM, the secret's name bound as additional data
// so a sealed value cannot be moved to another name. Layout: version byte,
// 12-byte nonce, ciphertext, 16-byte tag.
const version = 1;

export function loadSecretKey(options: { keyFile?: string; keyBase64?: string }): Buffer {
  let text: string;
  let source: string;
  if (options.keyFile) {
    source = options.keyFile;
    const mode = statSync(options.keyFile).mode;
    if (mode & 0o077) throw new Error(`secrets key file ${options.keyFile} is readable by others: chmod 600 it`);
    text = readFileSync(options.keyFile, "utf8");
  } else if (options.keyBase64) {
    source = "OTTO_SECRETS_KEY";
    text = options.keyBase64;
  } else {
    throw new Error("no secrets key: set OTTO_SECRETS_KEY_FILE or OTTO_SECRETS_KEY (32 random bytes, base64)");
  }
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/]+=*$/.test(trimmed)) throw new Error(`${source}: the secrets key must be base64`);
  const key = Buffer.from(trimmed, "base64");
  if (key.length !== 32) throw new Error(`${source}: the secrets key must be 32 bytes, got ${key.length} (make one with: openssl rand -base64 32)`);
  return key;
}

export async function createSecretKeyFile(path: string): Promise<void> {
  try {
    await writeFile(path, randomBytes(32).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

export function sealSecret(key: Buffer, name: string, value: string): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(Buffer.from(name));
  const body = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.from([version]), nonce, body, cipher.getAuthTag()]);
}

export function openSecret(key: Buffer, name: string, sealed: Buffer): string {
  if (sealed.length < 1 + 12 + 16 || sealed[0] !== version) throw new Error(`secret ${name} is not in a format this Otto knows`);
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(1, 13));
    decipher.setAAD(Buffer.from(name));
    decipher.setAuthTag(sealed.subarray(sealed.length - 16));
    return Buffer.concat([decipher.update(sealed.subarray(13, sealed.length - 16)), decipher.final()]).toString("utf8");
  } catch {
    throw new Error(`secret ${name} cannot be decrypted with this key (a different key, or the stored value was altered)`);
  }
}
