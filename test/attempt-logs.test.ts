// Each attempt of a retried job keeps its own log: nothing an earlier attempt
// printed is lost, and a follower sees every attempt in turn.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { followLogs, pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { postJson, postJsonStream, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("logs of retried jobs", () => {
  let otto: TestOtto;
  let gate: string;
  let runId: string;
  let followed: string[];
  before(async () => {
    // Every log goes to S3, however small (log-archive.test.ts covers those kept in Postgres).
    otto = await startTestOtto({ agents: 1, env: { OTTO_LOG_INLINE_MAX_BYTES: "0" } });
    gate = await stepsSharedDir(otto, "attempts");
    // Attempt 1 waits for the gate, prints and fails; attempt 2 prints and succeeds.
    const step = `while [ ! -f ${gate}/open ]; do sleep 0.05; done; echo "printed by attempt $OTTO_ATTEMPT"; [ "$OTTO_ATTEMPT" = 2 ]`;
    const run = await submit(otto.client, pipeline("flaky").job("flaky", { retry: 1, steps: [{ name: "flaky", run: step }] }).build());
    runId = run.id;
    const lines = followLogs(otto.client, runId, "flaky");
    followed = [(await lines.next()).value as string];
    await writeFile(join(gate, "open"), "");
    for await (const line of lines) followed.push(line);
    const final = await waitForRun(otto.client, runId);
    assert.equal(final.state, RunState.SUCCEEDED, `${final.jobs[0]?.message}; followed:\n${followed.join("\n")}`);
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    await rm(gate, { recursive: true, force: true });
  });

  const read = async (attempt: number) => {
    const { status, messages } = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId, job: "flaky", attempt });
    assert.equal(status, 200);
    return { text: messages.map((m) => m.text).join(""), attempts: new Set(messages.map((m) => m.attempt)) };
  };

  it("keeps attempt 1's log after attempt 2 ran", async () => {
    const first = await read(1);
    assert.match(first.text, /printed by attempt 1/);
    assert.match(first.text, /exited with code 1/);
    assert.doesNotMatch(first.text, /attempt 2/);
    assert.deepEqual([...first.attempts], [1]);
    const second = await read(2);
    assert.match(second.text, /printed by attempt 2/);
    assert.doesNotMatch(second.text, /printed by attempt 1/);
  });

  it("reads the latest attempt when none is named", async () => {
    const latest = await read(0);
    assert.match(latest.text, /printed by attempt 2/);
    assert.deepEqual([...latest.attempts], [2]);
  });

  it("follows a job across its attempts, marking where the next one starts", () => {
    const text = followed.join("\n");
    const one = text.indexOf("printed by attempt 1");
    const marker = followed.indexOf("--- attempt 2 ---");
    const two = text.indexOf("printed by attempt 2");
    assert.ok(one >= 0 && marker > 0 && two > one, text);
    assert.ok(followed.slice(0, marker).join("\n").includes("printed by attempt 1"));
    assert.ok(followed.slice(marker).join("\n").includes("printed by attempt 2"));
  });

  it("archives one object per attempt", async () => {
    const db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    try {
      // Closed logs move to S3 in the objects service's background.
      const rows = await waitFor("both attempts' logs archived", async () => {
        const { rows } = await db.query("SELECT attempt, state, object_key FROM objects.logs WHERE run_id = $1 ORDER BY attempt", [runId]);
        return rows.length === 2 && rows.every((row) => row.object_key !== "") && rows;
      });
      assert.deepEqual(rows, [
        { attempt: 1, state: "closed", object_key: `logs/${runId}/flaky/attempt-1.log.zst` },
        { attempt: 2, state: "closed", object_key: `logs/${runId}/flaky/attempt-2.log.zst` },
      ]);
    } finally {
      await db.end();
    }
  });

  it("answers a bad attempt number clearly", async () => {
    const missing = await postJson(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId, job: "flaky", attempt: 5 });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, "not_found");
    assert.equal(missing.json.message, 'job "flaky" has had 2 attempt(s), not 5');
    const negative = await postJson(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId, job: "flaky", attempt: -1 });
    assert.equal(negative.status, 400);
    assert.equal(negative.json.code, "invalid_argument");
  });
});
