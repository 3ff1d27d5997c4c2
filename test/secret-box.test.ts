import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { createSecretKeyFile, loadSecretKey, openSecret, sealSecret } from "@otto/kit/secret-box";

const dir = mkdtempSync(join(tmpdir(), "otto-secret-box-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const file = (contents: string, mode = 0o600): string => {
  const path = join(dir, `key-${files++}`);
  writeFileSync(path, contents, { mode });
  chmodSync(path, mode); // whatever the umask
  return path;
};
const posix = process.platform !== "win32";

describe("sealSecret and openSecret", () => {
  const key = randomBytes(32);

  test("round trip, empty and non-ASCII values included", () => {
    for (const value of ["hunter2", "", "päss wörd 🔑\nline two", "x".repeat(10_000)]) {
      assert.equal(openSecret(key, "DEPLOY_KEY", sealSecret(key, "DEPLOY_KEY", value)), value);
    }
  });

  test("layout: version byte, 12-byte nonce, ciphertext, 16-byte tag; the value does not appear", () => {
    const value = "correct horse battery staple";
    const sealed = sealSecret(key, "N", value);
    assert.equal(sealed[0], 1);
    assert.equal(sealed.length, 1 + 12 + Buffer.byteLength(value) + 16);
    assert.ok(!sealed.includes(Buffer.from(value)));
  });

  test("two seals of the same value differ in nonce and ciphertext", () => {
    const a = sealSecret(key, "N", "same value");
    const b = sealSecret(key, "N", "same value");
    assert.notDeepEqual(a.subarray(1, 13), b.subarray(1, 13));
    assert.notDeepEqual(a, b);
    assert.equal(openSecret(key, "N", a), openSecret(key, "N", b));
  });

  const cannot = (name: string) => (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, new RegExp(`^secret ${name} cannot be decrypted with this key`));
    assert.ok(!err.message.includes("s3cr3t-value"), "the error must not leak the value");
    return true;
  };

  test("every tampered byte (version, nonce, ciphertext, tag) fails", () => {
    const sealed = sealSecret(key, "TOKEN", "s3cr3t-value");
    for (let i = 1; i < sealed.length; i++) {
      const bad = Buffer.from(sealed);
      bad[i] ^= 0x01;
      assert.throws(() => openSecret(key, "TOKEN", bad), cannot("TOKEN"), `byte ${i}`);
    }
    const badVersion = Buffer.from(sealed);
    badVersion[0] = 2;
    assert.throws(() => openSecret(key, "TOKEN", badVersion), /secret TOKEN is sealed in format version 2/);
    assert.throws(() => openSecret(key, "TOKEN", sealed.subarray(0, 28)), /secret TOKEN is too short/);
    assert.throws(() => openSecret(key, "TOKEN", sealed.subarray(0, sealed.length - 1)), cannot("TOKEN"));
    assert.throws(() => openSecret(key, "TOKEN", Buffer.concat([sealed, Buffer.from([0])])), cannot("TOKEN"));
  });

  test("a wrong key fails", () => {
    const sealed = sealSecret(key, "TOKEN", "s3cr3t-value");
    assert.throws(() => openSecret(randomBytes(32), "TOKEN", sealed), cannot("TOKEN"));
  });

  test("the name is bound: a sealed value moved to another name fails", () => {
    const sealed = sealSecret(key, "TOKEN", "s3cr3t-value");
    assert.throws(() => openSecret(key, "OTHER", sealed), cannot("OTHER"));
    assert.throws(() => openSecret(key, "token", sealed), cannot("token"));
  });

  test("a key that is not 32 bytes is refused", () => {
    assert.throws(() => sealSecret(randomBytes(16), "N", "v"), /must be 32 bytes, got 16/);
    assert.throws(() => openSecret(randomBytes(31), "N", sealSecret(key, "N", "v")), /must be 32 bytes, got 31/);
  });
});

describe("loadSecretKey", () => {
  const raw = randomBytes(32);
  const base64 = raw.toString("base64");

  test("from a file, whitespace trimmed", () => {
    assert.deepEqual(loadSecretKey({ keyFile: file(base64) }), raw);
    assert.deepEqual(loadSecretKey({ keyFile: file(`  ${base64}\n\n`) }), raw);
  });

  test("from base64 (OTTO_SECRETS_KEY); the file wins when both are given", () => {
    assert.deepEqual(loadSecretKey({ keyBase64: base64 }), raw);
    assert.deepEqual(loadSecretKey({ keyBase64: ` ${base64}\n` }), raw);
    const other = randomBytes(32);
    assert.deepEqual(loadSecretKey({ keyFile: file(other.toString("base64")), keyBase64: base64 }), other);
  });

  test("no key at all says which settings to set", () => {
    for (const options of [{}, { keyFile: "", keyBase64: "" }]) {
      assert.throws(() => loadSecretKey(options), /no secrets key: set OTTO_SECRETS_KEY_FILE .* or OTTO_SECRETS_KEY/);
    }
  });

  test("a missing file says how to make one; a directory is refused", () => {
    const path = join(dir, "does-not-exist");
    assert.throws(() => loadSecretKey({ keyFile: path }), (err: Error) => {
      assert.match(err.message, /does not exist/);
      assert.match(err.message, /openssl rand -base64 32/);
      assert.ok(err.message.includes(path));
      return true;
    });
    assert.throws(() => loadSecretKey({ keyFile: dir }), /is not a regular file/);
  });

  test("not base64", () => {
    assert.throws(() => loadSecretKey({ keyBase64: "not base64!!" }), /OTTO_SECRETS_KEY is not base64/);
    assert.throws(() => loadSecretKey({ keyBase64: "abc-_def" }), /OTTO_SECRETS_KEY is not base64/);
    assert.throws(() => loadSecretKey({ keyBase64: `${base64.slice(0, 20)}\n${base64.slice(20)}` }), /is not base64: .*on one line/);
    assert.throws(() => loadSecretKey({ keyFile: file("   \n") }), /secrets key file .* is empty/);
    assert.throws(() => loadSecretKey({ keyFile: file("key: " + base64) }), /secrets key file .* is not base64/);
  });

  test("not 32 bytes", () => {
    assert.throws(() => loadSecretKey({ keyBase64: randomBytes(16).toString("base64") }), /OTTO_SECRETS_KEY holds 16 bytes, the secrets key must be exactly 32/);
    assert.throws(() => loadSecretKey({ keyFile: file(randomBytes(64).toString("base64")) }), /secrets key file .* holds 64 bytes/);
  });

  test("a key file readable by group or others must be chmod 600", { skip: !posix && "no POSIX modes" }, () => {
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      const path = file(base64, mode);
      assert.throws(() => loadSecretKey({ keyFile: path }), (err: Error) => {
        assert.ok(err.message.includes(`chmod 600 ${path}`), err.message);
        assert.ok(err.message.includes(`mode ${mode.toString(8)}`), err.message);
        assert.ok(!err.message.includes(base64));
        return true;
      });
    }
    assert.deepEqual(loadSecretKey({ keyFile: file(base64, 0o400) }), raw);
  });
});

describe("createSecretKeyFile", () => {
  test("writes a loadable random key with mode 0600", async () => {
    const path = join(dir, "new.key");
    await createSecretKeyFile(path);
    if (posix) assert.equal(statSync(path).mode & 0o777, 0o600);
    const key = loadSecretKey({ keyFile: path });
    assert.equal(key.length, 32);
    const other = join(dir, "other.key");
    await createSecretKeyFile(other);
    assert.notDeepEqual(loadSecretKey({ keyFile: other }), key);
  });

  test("never overwrites an existing file", async () => {
    const path = join(dir, "existing.key");
    await createSecretKeyFile(path);
    const before = readFileSync(path);
    await createSecretKeyFile(path);
    assert.deepEqual(readFileSync(path), before);
    const mine = file("something that is not a key\n");
    await createSecretKeyFile(mine);
    assert.equal(readFileSync(mine, "utf8"), "something that is not a key\n");
  });

  test("other errors are not swallowed", async () => {
    await assert.rejects(createSecretKeyFile(join(dir, "no-such-dir", "k")), { code: "ENOENT" });
  });
});
