import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { closeSync, fstatSync, openSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";

// Secrets at rest: AES-256-GCM under one 32-byte key, the secret's name bound
// as additional authenticated data so that a sealed value cannot be moved to
// another name. Layout of a sealed value:
//   1 version byte | 12-byte random nonce | ciphertext | 16-byte tag
// The key is 32 random bytes, base64, in a file of mode 0600
// (OTTO_SECRETS_KEY_FILE) or in OTTO_SECRETS_KEY.
const version = 1;
const keyBytes = 32;
const nonceBytes = 12;
const tagBytes = 16;
const makeOne = "make one with: openssl rand -base64 32";

/** The secrets key from a file (preferred) or a base64 string; errors say what to do. */
export function loadSecretKey(options: { keyFile?: string; keyBase64?: string }): Buffer {
  if (options.keyFile) return decodeKey(readKeyFile(options.keyFile), `secrets key file ${options.keyFile}`);
  if (options.keyBase64) return decodeKey(options.keyBase64, "OTTO_SECRETS_KEY");
  throw new Error(`no secrets key: set OTTO_SECRETS_KEY_FILE to a file holding 32 random bytes in base64 (${makeOne}), or OTTO_SECRETS_KEY to such a value`);
}

function readKeyFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new Error(`secrets key file ${path} does not exist (${makeOne} > ${path} && chmod 600 ${path})`);
    if (code === "EACCES") throw new Error(`secrets key file ${path} cannot be read by this user: give it to the user that runs Otto (chown), mode 600`);
    throw new Error(`secrets key file ${path} cannot be opened: ${(err as Error).message}`);
  }
  try {
    // fstat of the descriptor read from, so the check and the read see one file.
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`secrets key file ${path} is not a regular file`);
    // Windows has no POSIX modes to check.
    if (process.platform !== "win32" && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(3, "0");
      throw new Error(`secrets key file ${path} is accessible to other users (mode ${mode}): chmod 600 ${path}`);
    }
    return readFileSync(fd, "utf8");
  } finally {
    closeSync(fd);
  }
}

function decodeKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  if (trimmed === "") throw new Error(`${source} is empty: it must hold 32 random bytes in base64 (${makeOne})`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(trimmed)) {
    throw new Error(`${source} is not base64: it must hold 32 random bytes in base64 on one line (${makeOne})`);
  }
  const key = Buffer.from(trimmed, "base64");
  if (key.length !== keyBytes) {
    throw new Error(`${source} holds ${key.length} bytes, the secrets key must be exactly ${keyBytes} (${makeOne})`);
  }
  return key;
}

/** Writes a new random key to path with mode 0600, unless path exists already (never overwrites). */
export async function createSecretKeyFile(path: string): Promise<void> {
  try {
    await writeFile(path, randomBytes(keyBytes).toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
}

function checkKey(key: Buffer): void {
  if (key.length !== keyBytes) throw new Error(`the secrets key must be ${keyBytes} bytes, got ${key.length}`);
}

/** Encrypts value under key, bound to name. */
export function sealSecret(key: Buffer, name: string, value: string): Buffer {
  checkKey(key);
  const nonce = randomBytes(nonceBytes);
  const cipher = createCipheriv("aes-256-gcm", key, nonce, { authTagLength: tagBytes });
  cipher.setAAD(Buffer.from(name, "utf8"));
  const body = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
  return Buffer.concat([Buffer.from([version]), nonce, body, cipher.getAuthTag()]);
}

/** Decrypts what sealSecret(key, name, ...) made; throws (without the value) for another key, name or altered bytes. */
export function openSecret(key: Buffer, name: string, sealed: Buffer): string {
  checkKey(key);
  if (sealed.length < 1 + nonceBytes + tagBytes) throw new Error(`secret ${name} is too short to be a sealed secret (${sealed.length} bytes)`);
  if (sealed[0] !== version) throw new Error(`secret ${name} is sealed in format version ${sealed[0]}, this Otto knows version ${version}`);
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, sealed.subarray(1, 1 + nonceBytes), { authTagLength: tagBytes });
    decipher.setAAD(Buffer.from(name, "utf8"));
    decipher.setAuthTag(sealed.subarray(sealed.length - tagBytes));
    const body = sealed.subarray(1 + nonceBytes, sealed.length - tagBytes);
    return Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
  } catch {
    throw new Error(
      `secret ${name} cannot be decrypted with this key (it was sealed with another key or under another name, or the stored bytes were altered)`,
    );
  }
}
