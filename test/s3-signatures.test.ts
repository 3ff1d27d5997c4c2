// The development S3 endpoint (what `npm start` uses) answers only requests
// signed with this install's key, as AWS Signature V4 headers or presigned
// URLs, and no request, whatever its key, stops it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Client } from "minio";
import { signV4 } from "minio/dist/esm/signing.mjs";
import { Supervisor } from "@otto/launcher/supervisor";
import { repoRoot } from "@otto/launcher/system";
import { ensureS3Credentials, s3CredentialsFile, type S3Credentials } from "@otto/launcher/s3-credentials";

const bucket = "otto";
const region = "us-east-1";
const secretText = "the bytes of an artifact nobody else may read";

function clientFor(endpoint: string, keys: S3Credentials, partSize?: number): Client {
  const url = new URL(endpoint);
  return new Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: keys.accessKey, secretKey: keys.secretKey, region, pathStyle: true, partSize });
}

async function s3Code(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
  return "no error";
}

// A request signed in the Authorization header by the minio client's own
// signer, for the cases the client cannot be made to send.
function headerSigned(endpoint: string, keys: S3Credentials, method: string, path: string, body: Buffer, options: { date?: Date; signedHash?: string } = {}) {
  const date = options.date ?? new Date();
  const url = new URL(endpoint);
  const hash = options.signedHash ?? sha256(body);
  const amzDate = date.toISOString().replace(/[-:]|\.\d{3}/g, "");
  const headers: Record<string, string> = { host: url.host, "x-amz-date": amzDate, "x-amz-content-sha256": hash };
  headers.authorization = signV4({ method, path, headers } as never, keys.accessKey, keys.secretKey, region, date, hash);
  return fetch(`${endpoint}${path}`, { method, headers, body: method === "GET" || method === "HEAD" ? undefined : new Uint8Array(body) });
}

function sha256(body: Buffer): string {
  return createHash("sha256").update(body).digest("hex");
}

describe("development S3 endpoint: AWS Signature V4", () => {
  let dataDir: string;
  let supervisor: Supervisor;
  let endpoint: string;
  let keys: S3Credentials;
  let s3: Client;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "otto-s3-"));
    await mkdir(join(dataDir, "s3"));
    keys = await ensureS3Credentials(dataDir);
    supervisor = new Supervisor({ mode: "quiet", logFile: join(dataDir, "s3.log") });
    endpoint = await supervisor.start({
      name: "s3",
      entry: join(repoRoot, "services/launcher/src/s3-dev-server.ts"),
      env: { OTTO_S3_DIR: join(dataDir, "s3"), OTTO_S3_ACCESS_KEY: keys.accessKey, OTTO_S3_SECRET_KEY: keys.secretKey },
    });
    s3 = clientFor(endpoint, keys);
    await s3.makeBucket(bucket);
    await s3.putObject(bucket, "runs/1/secret.txt", Buffer.from(secretText), undefined, { "Content-Type": "text/plain" });
  });
  after(async () => {
    await supervisor?.stopAll();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("keeps a random key pair per install in a 0600 file, the same on every start", async () => {
    assert.notEqual(keys.accessKey, "S3RVER");
    assert.ok(keys.secretKey.length >= 32);
    assert.equal((await stat(s3CredentialsFile(dataDir))).mode & 0o777, 0o600);
    assert.deepEqual(await ensureS3Credentials(dataDir), keys);
    const other = await mkdtemp(join(tmpdir(), "otto-s3-other-"));
    try {
      assert.notDeepEqual(await ensureS3Credentials(other), keys);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("answers correctly signed requests: bucket, PUT, GET, HEAD, list, multipart", async () => {
    assert.equal(await s3.bucketExists(bucket), true);
    const text = Buffer.from(`round trip ${randomBytes(8).toString("hex")}`);
    await s3.putObject(bucket, "round/trip.txt", text);
    const read: Buffer[] = [];
    for await (const part of await s3.getObject(bucket, "round/trip.txt")) read.push(part as Buffer);
    assert.equal(Buffer.concat(read).toString(), text.toString());
    assert.equal((await s3.statObject(bucket, "round/trip.txt")).size, text.length);
    const partial: Buffer[] = [];
    for await (const part of await s3.getPartialObject(bucket, "round/trip.txt", 6)) partial.push(part as Buffer);
    assert.equal(Buffer.concat(partial).toString(), text.subarray(6).toString());
    const listed: string[] = [];
    for await (const item of s3.listObjectsV2(bucket, "round/", true)) listed.push((item as { name: string }).name);
    assert.deepEqual(listed, ["round/trip.txt"]);

    // A stream larger than the part size goes up in parts.
    const big = randomBytes(11 * 1024 * 1024);
    await clientFor(endpoint, keys, 5 * 1024 * 1024).putObject(bucket, "round/multipart.bin", Readable.from([big.subarray(0, 6_000_000), big.subarray(6_000_000)]), big.length);
    assert.equal((await s3.statObject(bucket, "round/multipart.bin")).size, big.length);
  });

  it("deletes many objects of the same directories in one request, and the run directories they emptied", async () => {
    const keys: string[] = [];
    for (let run = 1; run <= 3; run++) for (let n = 1; n <= 8; n++) keys.push(`artifacts/run-${run}/build/attempt-1/object-${n}`, `logs/run-${run}/job-${n}/attempt-1.log`);
    await Promise.all(keys.map((key) => s3.putObject(bucket, key, Buffer.from(key))));
    // Each request deletes sixteen objects of one run at once, and the three runs at once too.
    const results = await Promise.all([1, 2, 3].map((run) => s3.removeObjects(bucket, keys.filter((key) => key.includes(`/run-${run}/`)))));
    assert.deepEqual(results.flat(), []);
    for (const prefix of ["artifacts/", "logs/"]) {
      const listed: string[] = [];
      for await (const item of s3.listObjectsV2(bucket, prefix, true)) listed.push((item as { name: string }).name);
      assert.deepEqual(listed, []);
    }
    for (const top of ["artifacts", "logs"]) assert.deepEqual(await readdir(join(dataDir, "s3", bucket, top)), [], `no run directory left under ${top}/`);
    // Deleting them again is no error.
    assert.deepEqual(await s3.removeObjects(bucket, keys.slice(0, 3)), []);
  });

  it("answers presigned PUT and GET URLs", async () => {
    const body = `presigned ${randomBytes(8).toString("hex")}`;
    const put = await s3.presignedPutObject(bucket, "presigned/a b+c.txt", 60);
    const stored = await fetch(put, { method: "PUT", body });
    assert.equal(stored.status, 200, await stored.text());
    const got = await fetch(await s3.presignedGetObject(bucket, "presigned/a b+c.txt", 60));
    assert.equal(got.status, 200);
    assert.equal(await got.text(), body);
  });

  it("refuses an unsigned GET of an object, and an unsigned listing, with 403", async () => {
    const got = await fetch(`${endpoint}/${bucket}/runs/1/secret.txt`);
    assert.equal(got.status, 403);
    const text = await got.text();
    assert.match(text, /<Code>AccessDenied<\/Code>/);
    assert.doesNotMatch(text, /nobody else/);
    for (const query of ["list-type=2", "list-type=2&prefix=runs/", ""]) {
      const listed = await fetch(`${endpoint}/${bucket}?${query}`);
      assert.equal(listed.status, 403);
      assert.doesNotMatch(await listed.text(), /secret\.txt/);
    }
    const service = await fetch(`${endpoint}/`);
    assert.equal(service.status, 403);
    assert.doesNotMatch(await service.text(), /<Name>otto<\/Name>/);
  });

  it("stores nothing from an unsigned PUT", async () => {
    const put = await fetch(`${endpoint}/${bucket}/unsigned.txt`, { method: "PUT", body: "planted" });
    assert.equal(put.status, 403);
    assert.equal(await s3Code(s3.statObject(bucket, "unsigned.txt")), "NotFound");
  });

  it("refuses a wrong X-Amz-Signature, in a URL and in a header", async () => {
    const url = new URL(await s3.presignedGetObject(bucket, "runs/1/secret.txt", 60));
    url.searchParams.set("X-Amz-Signature", "0".repeat(64));
    const got = await fetch(url);
    assert.equal(got.status, 403);
    const text = await got.text();
    assert.match(text, /SignatureDoesNotMatch/);
    assert.doesNotMatch(text, /nobody else/);

    const good = await headerSigned(endpoint, keys, "GET", `/${bucket}/runs/1/secret.txt`, Buffer.alloc(0));
    assert.equal(await good.text(), secretText);
    const forged = await headerSigned(endpoint, { accessKey: keys.accessKey, secretKey: "not-the-secret-key-of-this-install" }, "GET", `/${bucket}/runs/1/secret.txt`, Buffer.alloc(0));
    assert.equal(forged.status, 403);
    assert.match(await forged.text(), /SignatureDoesNotMatch/);
  });

  it("refuses a presigned URL that has expired", async () => {
    const url = await s3.presignedGetObject(bucket, "runs/1/secret.txt", 5, {}, new Date(Date.now() - 60_000));
    const got = await fetch(url);
    assert.equal(got.status, 403);
    const text = await got.text();
    assert.match(text, /AccessDenied.*expired/s);
    assert.doesNotMatch(text, /nobody else/);
    const late = await s3.presignedUrl("PUT", bucket, "late.txt", 5, {}, new Date(Date.now() - 60_000));
    const put = await fetch(late, { method: "PUT", body: "too late" });
    assert.equal(put.status, 403);
    assert.equal(await s3Code(s3.statObject(bucket, "late.txt")), "NotFound");
  });

  it("refuses a presigned URL whose path or query was altered", async () => {
    await s3.putObject(bucket, "runs/2/other.txt", Buffer.from("another run's bytes"));
    const url = await s3.presignedGetObject(bucket, "runs/2/other.txt", 60);
    const otherPath = url.replace("/runs/2/other.txt", "/runs/1/secret.txt");
    const longer = url.replace(/X-Amz-Expires=60/, "X-Amz-Expires=604800");
    const extra = `${url}&response-content-type=text%2Fhtml`;
    for (const altered of [otherPath, longer, extra]) {
      assert.notEqual(altered, url);
      const got = await fetch(altered);
      assert.equal(got.status, 403, altered);
      assert.doesNotMatch(await got.text(), /nobody else|another run/);
    }
    const put = new URL(await s3.presignedPutObject(bucket, "runs/2/upload.txt", 60));
    put.pathname = `/${bucket}/runs/1/secret.txt`;
    assert.equal((await fetch(put, { method: "PUT", body: "overwritten" })).status, 403);
    assert.equal(await s3Code(s3.statObject(bucket, "runs/2/upload.txt")), "NotFound");
    assert.equal((await s3.statObject(bucket, "runs/1/secret.txt")).size, secretText.length);
  });

  it("refuses requests signed with another key pair, and stores nothing", async () => {
    const stranger = clientFor(endpoint, { accessKey: "S3RVER", secretKey: "S3RVER" });
    assert.equal(await s3Code(stranger.getObject(bucket, "runs/1/secret.txt")), "InvalidAccessKeyId");
    assert.equal(await s3Code(stranger.putObject(bucket, "planted.txt", Buffer.from("planted"))), "InvalidAccessKeyId");
    const sameIdOtherSecret = clientFor(endpoint, { accessKey: keys.accessKey, secretKey: "S3RVER" });
    assert.equal(await s3Code(sameIdOtherSecret.putObject(bucket, "planted.txt", Buffer.from("planted"))), "SignatureDoesNotMatch");
    const presigned = await fetch(await stranger.presignedGetObject(bucket, "runs/1/secret.txt", 60));
    assert.equal(presigned.status, 403);
    assert.equal(await s3Code(s3.statObject(bucket, "planted.txt")), "NotFound");
  });

  it("refuses a header-signed request from outside the allowed clock skew", async () => {
    const old = await headerSigned(endpoint, keys, "GET", `/${bucket}/runs/1/secret.txt`, Buffer.alloc(0), { date: new Date(Date.now() - 20 * 60_000) });
    assert.equal(old.status, 403);
    assert.match(await old.text(), /RequestTimeTooSkewed/);
  });

  it("stores nothing whose body differs from the signed SHA-256", async () => {
    const res = await headerSigned(endpoint, keys, "PUT", `/${bucket}/swapped.txt`, Buffer.from("what arrived"), { signedHash: sha256(Buffer.from("what was signed")) });
    assert.equal(res.status, 400);
    assert.match(await res.text(), /XAmzContentSHA256Mismatch/);
    assert.equal(await s3Code(s3.statObject(bucket, "swapped.txt")), "NotFound");
  });

  it("answers a key it cannot store with an error, and keeps running", async () => {
    const pid = supervisor.pid("s3");
    const key = `artifacts/run-1/build/attempt-1/${"a".repeat(245)}`;
    assert.equal(await s3Code(s3.putObject(bucket, key, Buffer.from("long"))), "KeyTooLongError");
    const put = await fetch(await s3.presignedPutObject(bucket, key, 60), { method: "PUT", body: "long" });
    assert.equal(put.status, 400);
    assert.match(await put.text(), /KeyTooLongError/);
    assert.equal((await fetch(await s3.presignedGetObject(bucket, key, 60))).status, 400);
    // Keys the minio client will not send, signed all the same.
    const longer = await headerSigned(endpoint, keys, "PUT", `/${bucket}/a/${"b".repeat(1100)}`, Buffer.from("x"));
    assert.equal(longer.status, 400);
    assert.match(await longer.text(), /KeyTooLongError/);
    const escaping = await headerSigned(endpoint, keys, "PUT", `/${bucket}/a/..%2F..%2F..%2Fescape.txt`, Buffer.from("x"));
    assert.equal(escaping.status, 400);
    assert.match(await escaping.text(), /InvalidArgument/);

    // Still the same process, answering.
    assert.equal((await s3.statObject(bucket, "runs/1/secret.txt")).size, secretText.length);
    assert.equal(supervisor.pid("s3"), pid);
    assert.equal(supervisor.info().find((c) => c.name === "s3")?.restarts, 0);
    assert.deepEqual(await readdir(dataDir).then((names) => names.filter((n) => n.includes("escape"))), []);
  });

  it("answers 500 to a request that fails inside the store, and keeps running", async () => {
    const pid = supervisor.pid("s3");
    // s3rver keeps object "q/w" in the file "q/w._S3rver_object": once that
    // name is a directory, the file cannot be opened (EISDIR).
    await s3.putObject(bucket, "q/w._S3rver_object/e", Buffer.from("first"));
    const clash = await headerSigned(endpoint, keys, "PUT", `/${bucket}/q/w`, Buffer.from("second"));
    assert.equal(clash.status, 500);
    assert.match(await clash.text(), /InternalError/);
    assert.equal((await s3.statObject(bucket, "runs/1/secret.txt")).size, secretText.length);
    assert.equal(supervisor.pid("s3"), pid);
    assert.equal(supervisor.info().find((c) => c.name === "s3")?.restarts, 0);
  });
});
