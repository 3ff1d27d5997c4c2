// Object storage that stalls or dies while a job ends may delay where its log
// is archived, never the job's result: the agent keeps its task alive and
// completes it, the log stays readable from Postgres, and it moves to S3 once
// storage answers again.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { postJsonStream, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { assertState } from "./helpers/run-assertions.ts";

// About 110 KB of output (1100 lines of 100 bytes), then a wait for the gate.
const lineCount = 1100;
const stepPrinting = (gate: string) =>
  `i=0; while [ $i -lt ${lineCount} ]; do printf 'line %05d padded to a hundred bytes %062d\\n' $i 0; i=$((i+1)); done; ` +
  `while [ ! -f ${gate}/open ]; do sleep 0.05; done; echo "the last line"`;

describe("stalled or dead object storage while a job ends", () => {
  let otto: TestOtto;
  let db: pg.Client;
  let stoppedPid: number | undefined;

  before(async () => {
    // A request to S3 that gets no answer for a second fails and is tried again.
    otto = await startTestOtto({ agents: 1, env: { OTTO_S3_IDLE_TIMEOUT_MS: "1000" } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
  });
  after(async () => {
    if (stoppedPid) process.kill(stoppedPid, "SIGCONT");
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  const read = async (runId: string) => {
    const { status, messages } = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId, job: "big", raw: true });
    assert.equal(status, 200);
    return messages.map((m) => m.text ?? "").join("");
  };
  const stored = async (runId: string) => {
    const { rows } = await db.query("SELECT state, object_key, size::int FROM objects.logs WHERE run_id = $1 AND job = 'big'", [runId]);
    // Chunks whose text is still in Postgres (their rows stay once archived, as the log's index).
    const { rows: chunks } = await db.query(
      "SELECT count(*)::int AS n FROM objects.log_chunks WHERE run_id = $1 AND job = 'big' AND (zstd IS NOT NULL OR text IS NOT NULL)",
      [runId],
    );
    return { ...rows[0], chunks: chunks[0].n };
  };
  const printedLines = (text: string) => text.split("\n").filter((line) => /^line \d{5} padded/.test(line)).length;

  // Starts the job, waits until all its output is in the log, does `harm` to
  // S3 and lets the step end.
  async function endJobWhile(harm: (pid: number) => void, name: string) {
    const gate = await stepsSharedDir(otto, name);
    const run = await submit(otto.client, pipeline(name).job("big", { steps: [{ name: "print", run: stepPrinting(gate) }] }).build());
    await waitFor("the step's output in the log", async () => printedLines(await read(run.id)) === lineCount, 60_000);
    harm(otto.supervisor.pid("s3")!);
    await writeFile(join(gate, "open"), "");
    return run.id;
  }

  it("a stalled S3 (SIGSTOP) delays the log's archive, not the run's result", async () => {
    const runId = await endJobWhile((pid) => {
      process.kill(pid, "SIGSTOP");
      stoppedPid = pid;
    }, "stalled");
    const run = await waitForRun(otto.client, runId, AbortSignal.timeout(90_000));
    assertState(run, RunState.SUCCEEDED);
    assertState(run.jobs[0]!, RunState.SUCCEEDED);

    // Readable while S3 is still stopped, from Postgres, whole.
    const whileStalled = await read(runId);
    assert.equal(printedLines(whileStalled), lineCount);
    assert.match(whileStalled, /the last line\n[^]*exited with code 0/);
    const pending = await stored(runId);
    assert.deepEqual({ state: pending.state, objectKey: pending.object_key }, { state: "closed", objectKey: "" });
    assert.ok(pending.chunks > 0 && pending.size === Buffer.byteLength(whileStalled), JSON.stringify(pending));
    // The archive's request timed out and the log was put back for a later
    // try (a claim holds a log for two minutes, a retry waits less than one).
    await waitFor("a failed archive put back for a later try", async () => {
      const { rows } = await db.query(
        "SELECT archive_due > now() AND archive_due < now() + interval '60 s' AS retrying FROM objects.logs WHERE run_id = $1 AND job = 'big'",
        [runId],
      );
      return rows[0].retrying;
    });

    process.kill(stoppedPid!, "SIGCONT");
    stoppedPid = undefined;
    const archived = await waitFor("the log's archive in S3", async () => {
      const now = await stored(runId);
      return now.object_key !== "" && now;
    }, 60_000);
    assert.deepEqual(
      { objectKey: archived.object_key, chunks: archived.chunks, size: archived.size },
      { objectKey: `logs/${runId}/big/attempt-1.log.zst`, chunks: 0, size: Buffer.byteLength(whileStalled) },
    );
    assert.equal(await read(runId), whileStalled, "the log reads the same from S3");
  });

  it("an S3 killed while stalled, and restarted by the launcher, gets the log once it is back", async () => {
    const restartsBefore = otto.supervisor.info().find((p) => p.name === "s3")!.restarts;
    let killedPid = 0;
    const runId = await endJobWhile((pid) => {
      process.kill(pid, "SIGSTOP");
      stoppedPid = killedPid = pid;
    }, "killed");
    const run = await waitForRun(otto.client, runId, AbortSignal.timeout(90_000));
    assertState(run, RunState.SUCCEEDED);
    const whileStalled = await read(runId);
    assert.equal(printedLines(whileStalled), lineCount);

    // The archive in flight dies with the process; the launcher starts a new one.
    process.kill(killedPid, "SIGKILL");
    stoppedPid = undefined;
    await waitFor("a new S3 process", () => {
      const s3 = otto.supervisor.info().find((p) => p.name === "s3")!;
      return s3.restarts > restartsBefore && s3.pid !== undefined && s3.pid !== killedPid && s3.url !== undefined;
    });
    const archived = await waitFor("the log's archive in S3", async () => {
      const now = await stored(runId);
      return now.object_key !== "" && now;
    }, 60_000);
    assert.deepEqual({ objectKey: archived.object_key, chunks: archived.chunks }, { objectKey: `logs/${runId}/big/attempt-1.log.zst`, chunks: 0 });
    assert.equal(await read(runId), whileStalled, "the log reads the same from S3");
  });
});

describe("a stalled objects service while a job ends", () => {
  const leaseMs = 2_000;
  let otto: TestOtto;
  let db: pg.Client;
  let stoppedPid: number | undefined;

  before(async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_TASK_LEASE_MS: String(leaseMs) } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
  });
  after(async () => {
    if (stoppedPid) process.kill(stoppedPid, "SIGCONT");
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  it("delays the completion, not the result: the agent keeps its task alive meanwhile", async () => {
    const gate = await stepsSharedDir(otto, "objects");
    const step = `echo started; while [ ! -f ${gate}/open ]; do sleep 0.05; done; echo "the last line"`;
    const run = await submit(otto.client, pipeline("objects-stalled").job("big", { steps: [{ name: "print", run: step }] }).build());
    await waitFor("the step's first line in the log", async () => {
      const { messages } = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId: run.id, job: "big" });
      return messages.some((m) => /\| started\n/.test(m.text ?? ""));
    });
    stoppedPid = otto.supervisor.pid("objects")!;
    process.kill(stoppedPid, "SIGSTOP");
    const stoppedAt = new Date();
    await writeFile(join(gate, "open"), "");
    // The agent cannot close the log, so it cannot complete the task yet: it
    // holds the task by its heartbeats, well past what one lease would last.
    await waitFor("the task's lease renewed past three leases after the stop", async () => {
      const { rows } = await db.query(
        "SELECT status, lease_expires_at > $2::timestamptz + make_interval(secs => $3::float8 / 1000) AS renewed FROM coordinator.tasks WHERE run_id = $1",
        [run.id, stoppedAt, 3 * leaseMs],
      );
      assert.equal(rows[0].status, "assigned", "the task is still the agent's");
      return rows[0].renewed;
    });
    process.kill(stoppedPid, "SIGCONT");
    stoppedPid = undefined;
    const finished = await waitForRun(otto.client, run.id, AbortSignal.timeout(60_000));
    assertState(finished, RunState.SUCCEEDED);
    const { messages } = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId: run.id, job: "big" });
    assert.match(messages.map((m) => m.text ?? "").join(""), /the last line\n[^]*exited with code 0/);
  });
});
