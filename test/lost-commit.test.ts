// An agent's report whose transaction Postgres cut off with its COMMIT on
// the way (the session ended: a restart, or an operator's
// pg_terminate_backend) may or may not have been written. Such reports are
// safe to send again, so the coordinator answers unavailable and the agent
// sends it again: the job is not failed for it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { pipeline, RunState, submit, waitForRun } from "@otto/sdk";
import { startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("a step report whose commit Postgres cut off", () => {
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

  it("is sent again by the agent, and the job succeeds", async () => {
    const dir = await stepsSharedDir(otto, "lost-commit");
    const run = await submit(
      otto.client,
      pipeline("lost-commit")
        .job("build", { steps: [`while [ ! -e '${dir}/go' ]; do sleep 0.05; done; echo went`, "echo after"] })
        .build(),
    );
    const firstStep = async () => (await otto.client.runs.getRun({ runId: run.id })).run!.jobs[0]?.steps[0]?.state;
    await waitFor("the first step to run", async () => (await firstStep()) === RunState.RUNNING);

    // Holding the job's step rows, the statement that writes the step's end
    // (sent with its transaction's COMMIT) waits for them.
    const holder = await db.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM coordinator.steps WHERE run_id = $1 FOR UPDATE", [run.id]);
      await writeFile(join(dir, "go"), "");
      const waiting = async () =>
        (
          await db.query(
            `SELECT pid, query FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND application_name = 'otto-coordinator'`,
          )
        ).rows[0] as { pid: number; query: string } | undefined;
      const blocked = await waitFor("the coordinator's write of the step's end to wait for the rows", waiting);
      const { rows } = await db.query("SELECT pg_terminate_backend($1) AS ended", [blocked.pid]);
      assert.equal(rows[0].ended, true);
      // The agent sends it again, which waits for the rows too (on another
      // connection): only then are they let go.
      await waitFor("the report to be sent again", async () => {
        const again = await waiting();
        return again !== undefined && again.pid !== blocked.pid;
      });
    } finally {
      await holder.query("COMMIT").catch(() => {});
      holder.release();
    }

    const final = await waitForRun(otto.client, run.id);
    assert.equal(final.state, RunState.SUCCEEDED, JSON.stringify(final.jobs.map((job) => [job.name, job.message])));
    assert.deepEqual(final.jobs[0].steps.map((step) => step.state), [RunState.SUCCEEDED, RunState.SUCCEEDED]);
    const log = await tailOfLog(otto, 400);
    assert.match(log, /"level":"warn"[^\n]*answered unavailable/);
    assert.doesNotMatch(log, /"level":"error"[^\n]*"service":"coordinator"/);
  });
});
