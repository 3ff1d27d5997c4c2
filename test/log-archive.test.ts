// Where a finished job's log is kept: a small one stays in Postgres as the
// chunks it was written in, a larger one becomes one object in S3 (moved
// there after the log closed; the chunks' rows stay as its index); either
// reads back the same, from any offset, and a follower of either ends.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { followLogs, pipeline, submitAndWait, RunState, type Run } from "@otto/sdk";
import { postJsonStream, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { assertState } from "./helpers/run-assertions.ts";

const inlineMaxBytes = 4096;
// About 12 KB of output, in two chunks at least (the agent sends a chunk every 100 ms).
const largeStep = 'i=0; while [ $i -lt 100 ]; do echo "early line $i, padded to about sixty bytes....."; i=$((i+1)); done; sleep 0.3; ' +
  'i=0; while [ $i -lt 100 ]; do echo "late line $i, padded to about sixty bytes......"; i=$((i+1)); done';

describe("log archive", () => {
  let otto: TestOtto;
  let db: pg.Client;
  let run: Run;

  before(async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_LOG_INLINE_MAX_BYTES: String(inlineMaxBytes) } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    run = await submitAndWait(
      otto.client,
      pipeline("logs")
        .job("small", { steps: ["echo small one", "echo small two"] })
        .job("appended", { steps: ["echo before the pause; sleep 0.3; echo after the pause"] })
        .job("large", { steps: [largeStep] })
        .build(),
    );
    assertState(run, RunState.SUCCEEDED);
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  async function stored(job: string) {
    const { rows } = await db.query("SELECT state, object_key, size::int FROM objects.logs WHERE run_id = $1 AND job = $2", [run.id, job]);
    const { rows: chunks } = await db.query(
      `SELECT count(*)::int AS n, count(*) FILTER (WHERE zstd IS NOT NULL OR text IS NOT NULL)::int AS texts
       FROM objects.log_chunks WHERE run_id = $1 AND job = $2`,
      [run.id, job],
    );
    return { ...rows[0], chunks: chunks[0].n, texts: chunks[0].texts };
  }

  async function read(job: string, offset = 0, raw = true): Promise<string> {
    const { status, messages } = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId: run.id, job, offset, raw });
    assert.equal(status, 200);
    return messages.map((m) => m.text ?? "").join("");
  }

  it("keeps a small log in Postgres, in the chunks it was written in", async () => {
    const small = await stored("small");
    assert.deepEqual({ state: small.state, objectKey: small.object_key, chunks: small.chunks, texts: small.texts }, { state: "closed", objectKey: "", chunks: 1, texts: 1 });
    assert.ok(small.size > 0 && small.size <= inlineMaxBytes);
    const text = await read("small");
    assert.equal(Buffer.byteLength(text), small.size);
    assert.match(text, /small one\n[^]*small two\n/);

    const appended = await stored("appended");
    assert.equal(appended.object_key, "");
    assert.ok(appended.chunks >= 2, `the log arrived in ${appended.chunks} chunk(s): appended while the step ran, the last one with the close`);
    assert.match(await read("appended"), /before the pause\n[^]*after the pause\n/);
  });

  it("moves a log larger than the limit to one S3 object and drops its chunks' texts from Postgres", async () => {
    // In the objects service's background, once the log is closed.
    const large = await waitFor("the large log archived", async () => {
      const now = await stored("large");
      return now.object_key !== "" && now;
    });
    assert.deepEqual(
      { state: large.state, objectKey: large.object_key, texts: large.texts },
      { state: "closed", objectKey: `logs/${run.id}/large/attempt-1.log.zst`, texts: 0 },
    );
    assert.ok(large.chunks >= 2, `${large.chunks} chunks`);
    assert.ok(large.size > inlineMaxBytes);
    const text = await read("large");
    assert.equal(Buffer.byteLength(text), large.size);
    const lines = text.split("\n").filter((line) => /(early|late) line \d+,/.test(line));
    assert.equal(lines.length, 200);
    assert.match(lines[0], /early line 0,/);
    assert.match(lines[199], /late line 99,/);
  });

  it("reads either kind from an offset", async () => {
    for (const job of ["small", "appended", "large"]) {
      const whole = await read(job);
      const offset = Math.floor(whole.length / 2);
      assert.equal(await read(job, offset), whole.slice(offset), `${job} from byte ${offset}`);
    }
  });

  it("a follower of a finished log gets all of it and ends, wherever it is kept", async () => {
    for (const job of ["small", "large"]) {
      const lines: string[] = [];
      for await (const line of followLogs(otto.client, run.id, job, { follow: true, signal: AbortSignal.timeout(20_000) })) lines.push(line);
      assert.equal(lines.join("\n") + "\n", await read(job, 0, false), job);
      assert.match(lines.at(-1)!, /^\d{4}-\d\d-\d\dT[\d:.]+Z .+ \| /, "each line with its time and step");
    }
  });
});
