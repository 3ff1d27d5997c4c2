// Artifact names as long as Otto allows (255 characters, one part of 245 of
// them) under a job name as long as it allows (64): the development S3
// store keeps each key as files, and such a name once crashed it. Objects
// are stored under a hash of the name, so any store holds them.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as Minio from "minio";
import pg from "pg";
import { RunState, submitAndWait } from "@otto/sdk";
import { isAlive, request, startTestOtto, type TestOtto } from "./helpers/otto.ts";

describe("artifacts with the longest names", () => {
  let otto: TestOtto;

  before(async () => {
    otto = await startTestOtto();
  });
  after(async () => otto?.stopAndClean());

  it("are uploaded, listed and downloadable, and no process restarts", async () => {
    const pidsBefore = new Map(otto.supervisor.info().map((p) => [p.name, p.pid]));
    const job = `j${"x".repeat(63)}`;
    const flat = `${"a".repeat(241)}.txt`; // one part of 245 characters
    const nested = `${"d".repeat(100)}/${"e".repeat(100)}/${"f".repeat(49)}.bin`; // 255 in all
    assert.equal(flat.length, 245);
    assert.equal(nested.length, 255);
    const yaml = [
      "name: long-artifact-names",
      "jobs:",
      `  ${job}:`,
      `    artifacts: [${flat}, ${nested}]`,
      "    steps:",
      `      - run: printf flat > ${flat} && mkdir -p ${nested.slice(0, nested.lastIndexOf("/"))} && printf nested > ${nested}`,
    ].join("\n");
    const run = await submitAndWait(otto.client, yaml);
    assert.equal(run.jobs[0].state, RunState.SUCCEEDED, run.jobs[0].message);
    assert.equal(run.state, RunState.SUCCEEDED);

    const { artifacts } = await otto.client.artifacts.listArtifacts({ runId: run.id });
    assert.deepEqual(
      artifacts.map((a) => [a.job, a.name, Number(a.size)]),
      [
        [job, flat, 4],
        [job, nested, 6],
      ],
    );
    for (const [name, bytes] of [
      [flat, "flat"],
      [nested, "nested"],
    ]) {
      const { url, artifact } = await otto.client.artifacts.getArtifactUrl({ runId: run.id, job, name });
      assert.equal(artifact!.name, name);
      const hash = createHash("sha256").update(name).digest("hex");
      assert.match(url, new RegExp(`/artifacts/${run.id}/${job}/attempt-1/${hash}\\?`), "under the hash of the name");
      const download = await request(url);
      assert.equal(download.status, 200, download.text);
      assert.equal(download.text, bytes);
    }

    for (const p of otto.supervisor.info()) {
      assert.equal(p.restarts, 0, `${p.name} restarted`);
      assert.ok(p.pid !== undefined && p.pid === pidsBefore.get(p.name) && isAlive(p.pid), `${p.name} is the same live process`);
    }
  });
});

describe("artifacts stored before their keys were hashed", () => {
  let otto: TestOtto;

  before(async () => {
    otto = await startTestOtto({ agents: 0 });
  });
  after(async () => otto?.stopAndClean());

  it("are still downloaded from where they were stored, under their name", async () => {
    const runId = randomUUID();
    const legacyKey = `artifacts/${runId}/build/attempt-1/dist/app.txt`;
    const s3 = otto.supervisor.info().find((p) => p.name === "s3")!.url!;
    const keys = JSON.parse(await readFile(join(otto.dataDir, "s3.credentials"), "utf8"));
    const url = new URL(s3);
    const store = new Minio.Client({ endPoint: url.hostname, port: Number(url.port), useSSL: false, accessKey: keys.accessKey, secretKey: keys.secretKey });
    await store.putObject("otto", legacyKey, Buffer.from("stored the old way"));
    // The row as the migration leaves an artifact stored before it.
    const db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    try {
      await db.query("INSERT INTO objects.artifacts (run_id, job, attempt, name, size, object_key) VALUES ($1, 'build', 1, 'dist/app.txt', 18, $2)", [runId, legacyKey]);
    } finally {
      await db.end();
    }
    const { url: download } = await otto.client.artifacts.getArtifactUrl({ runId, job: "build", name: "dist/app.txt" });
    assert.match(download, new RegExp(`/${legacyKey}\\?`));
    assert.equal((await request(download)).text, "stored the old way");
  });
});
