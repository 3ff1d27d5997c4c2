// A log whose attempt ended without the agent closing it (the agent was
// killed mid-step) is closed by the objects service, as it is: followers of
// it end, and it reads back with what the step printed.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { pipeline, RunState, submit, waitForRun } from "@otto/sdk";
import { startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("a log its agent never closed", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  before(async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_TASK_LEASE_MS: "2000" } });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 2 });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  it("is closed once its attempt has ended, and keeps what was printed", async () => {
    const run = await submit(otto.client, pipeline("abandoned").job("build", { steps: ["printf 'made %s\\n' output; sleep 600"] }).build());
    const logState = async () =>
      (await db.query("SELECT state FROM objects.logs WHERE run_id = $1 AND job = 'build' AND attempt = 1", [run.id])).rows[0]?.state;
    const logText = async () => {
      let text = "";
      for await (const chunk of otto.client.logs.readLog({ runId: run.id, job: "build", attempt: 1 })) text += chunk.text;
      return text;
    };
    await waitFor("the step's output in its log", async () => /\| made output\n/.test(await logText()));
    process.kill(otto.supervisor.pid("agent-1")!, "SIGKILL");
    // The lease lapses (no retry policy: the job fails as "agent lost").
    const final = await waitForRun(otto.client, run.id);
    assert.equal(final.state, RunState.FAILED);
    assert.match(final.jobs[0].message, /agent agent-1 lost/);
    await waitFor("the abandoned log to be closed", async () => (await logState()) === "closed", 40_000, 200);
    assert.match(await logText(), /\| made output\n/);
  });
});
