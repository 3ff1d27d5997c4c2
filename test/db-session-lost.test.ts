// A call whose database session Postgres ended midway (a restart, or an
// operator's pg_terminate_backend), even with its transaction's COMMIT on
// the way, so that whether it was written is unknown. A call that may be
// made again (an agent's report about its attempt, a read, a submission
// with its request id) is answered unavailable and made again, by the agent
// or by the gateway: the caller sees it succeed, once. Each case holds a
// lock the call's statement waits for, ends that statement's session, sees
// the call made again (waiting on another session), and lets go.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { pipeline, RunState, submit, waitForRun } from "@otto/sdk";
import { startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("a call whose database session Postgres ended midway", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 3 });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  // Holds `lock` while `start` makes the call; ends the session of the
  // coordinator's statement (the one like `statement`) that waits for the
  // lock, and lets go once that statement waits again on another session.
  async function cutOffOnce<T>(lock: { sql: string; values?: unknown[] }, statement: string, start: () => Promise<T>): Promise<T> {
    const waiting = async () =>
      (
        await db.query(
          `SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND application_name = 'otto-coordinator' AND wait_event_type = 'Lock' AND query LIKE $1`,
          [`%${statement}%`],
        )
      ).rows[0] as { pid: number } | undefined;
    const holder = await db.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(lock.sql, lock.values);
      const call = start();
      call.catch(() => {});
      const blocked = await waitFor(`the coordinator's "${statement}" to wait for the lock`, waiting);
      const { rows } = await db.query("SELECT pg_terminate_backend($1) AS ended", [blocked.pid]);
      assert.equal(rows[0].ended, true);
      await waitFor("the call to be made again", async () => {
        const again = await waiting();
        return again !== undefined && again.pid !== blocked.pid;
      });
      await holder.query("COMMIT");
      return await call;
    } finally {
      await holder.query("ROLLBACK").catch(() => {});
      holder.release();
    }
  }

  // How the statement that writes a run's changes (apply-changes.ts) begins:
  // Postgres shows the first 1 kB of a statement's text.
  const applyStatement = "UPDATE coordinator.runs r SET last_seq";

  const answeredUnavailable = async (method: string) => {
    const log = await tailOfLog(otto, 2000);
    assert.match(log, new RegExp(`"level":"warn"[^\\n]*"method":"${method}"[^\\n]*answered unavailable`));
    assert.doesNotMatch(log, new RegExp(`"level":"error"[^\\n]*"method":"${method}"`), "not answered internal");
  };

  it("is an agent's step report, sent again by the agent: the job succeeds", async () => {
    const dir = await stepsSharedDir(otto, "lost-report");
    const run = await submit(
      otto.client,
      pipeline("lost-report")
        .job("build", { steps: [`while [ ! -e '${dir}/go' ]; do sleep 0.05; done; echo went`, "echo after"] })
        .build(),
    );
    const firstStep = async () => (await otto.client.runs.getRun({ runId: run.id })).run!.jobs[0]?.steps[0]?.state;
    await waitFor("the first step to run", async () => (await firstStep()) === RunState.RUNNING);
    // Holding the job's step rows, the statement that writes the step's end
    // (sent with its transaction's COMMIT) waits for them.
    await cutOffOnce({ sql: "SELECT 1 FROM coordinator.steps WHERE run_id = $1 FOR UPDATE", values: [run.id] }, applyStatement, () =>
      writeFile(join(dir, "go"), ""),
    );
    const final = await waitForRun(otto.client, run.id);
    assert.equal(final.state, RunState.SUCCEEDED, JSON.stringify(final.jobs.map((job) => [job.name, job.message])));
    assert.deepEqual(final.jobs[0].steps.map((step) => step.state), [RunState.SUCCEEDED, RunState.SUCCEEDED]);
    await answeredUnavailable("(ReportSteps|CompleteTask)");
  });

  it("is a read, made again by the gateway: the caller gets its answer", async () => {
    const run = await submit(otto.client, pipeline("lost-read").job("build", { steps: ["true"] }).build());
    await waitForRun(otto.client, run.id);
    const read = await cutOffOnce({ sql: "LOCK TABLE coordinator.steps IN ACCESS EXCLUSIVE MODE" }, "r.rerun_of", () =>
      otto.client.runs.getRun({ runId: run.id }),
    );
    assert.equal(read.run?.id, run.id);
    assert.equal(read.run?.state, RunState.SUCCEEDED);
    await answeredUnavailable("GetRun");
  });

  it("is a submission with its request id, made again by the gateway: one run is stored", async () => {
    const requestId = randomUUID();
    const body = pipeline("lost-submit").job("build", { steps: ["true"] }).build();
    // The run's first journal entries are written by the statement that
    // commits the submission.
    const answer = await cutOffOnce({ sql: "LOCK TABLE coordinator.journal IN SHARE MODE" }, applyStatement, () =>
      otto.client.runs.submitRun({ source: { case: "pipeline", value: body }, requestId }),
    );
    const { rows } = await db.query("SELECT id FROM coordinator.runs WHERE request_id = $1", [requestId]);
    assert.deepEqual(rows.map((row) => row.id), [answer.run?.id]);
    assert.equal((await waitForRun(otto.client, answer.run!.id)).state, RunState.SUCCEEDED);
    await answeredUnavailable("SubmitRun");
  });
});
