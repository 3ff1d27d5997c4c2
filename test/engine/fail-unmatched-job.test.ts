import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { failUnmatchedJob } from "@otto/coordinator/engine/fail-unmatched-job";
import { startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobRow, jobStates, RunState, runRow, scope, stepStates, taskOf } from "./engine-rows.ts";

// A job that no live agent could take for OTTO_UNMATCHED_JOB_TIMEOUT FAILS
// from QUEUED, its task withdrawn, and what needs it is skipped.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const message = "no live agent with the labels [gpu] for 1h (OTTO_UNMATCHED_JOB_TIMEOUT)";

test("the job fails with the reason, its task is withdrawn, and the run goes on to its end", async () => {
  const s = scope(db);
  const runId = await s.submit({ train: { runsOn: ["gpu"], steps: ["make", "make check"] }, report: { needs: ["train"] } });
  const task = await taskOf(db, runId, "train");
  assert.equal(await db.tx((client) => failUnmatchedJob(client, runId, task.id, message)), true);
  assert.deepEqual(await jobStates(db, runId), { train: "FAILED", report: "SKIPPED" });
  assert.equal((await jobRow(db, runId, "train")).message, message);
  assert.deepEqual(await stepStates(db, runId, "train"), ["CANCELED", "CANCELED"]);
  assert.equal((await taskOf(db, runId, "train")).status, "done");
  assert.equal((await runRow(db, runId)).state, RunState.FAILED);

  assert.equal(await db.tx((client) => failUnmatchedJob(client, runId, task.id, message)), false, "a second time changes nothing");
});

test("a task an agent took meanwhile is left alone", async () => {
  const s = scope(db);
  const runId = await s.submit({ train: {} });
  const task = await taskOf(db, runId, "train");
  await db.pool.query("UPDATE coordinator.tasks SET status = 'assigned', attempt = 1, agent_id = 'agent-x' WHERE id = $1", [task.id]);
  assert.equal(await db.tx((client) => failUnmatchedJob(client, runId, task.id, message)), false);
  assert.deepEqual(await jobStates(db, runId), { train: "QUEUED" });
});
