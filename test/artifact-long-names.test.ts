// Artifact names as long as Otto allows (255 characters, one part of 245 of
// them) under a job name as long as it allows (64): the development S3
// store keeps each key as files, and such a name once crashed it. Objects
// are stored under a hash of the name, so any store holds them.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { RunState, submitAndWait } from "../sdk/src/index.ts";
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
