import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { approveJob, rejectJob } from "@otto/coordinator/engine/decide-approval";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { claim, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobStates, journalLines, refused, RunState, runRow, scope, tasksOf } from "./engine-rows.ts";

// A job with an approval waits (QUEUED -> WAITING) once its needs are done,
// with no task and so holding nothing; ApproveJob puts it back (WAITING ->
// QUEUED) and it gets its task at once; RejectJob fails it (WAITING ->
// FAILED) and skips what needs it; a job not waiting is refused; a
// canceled run cancels it (WAITING -> CANCELED).

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const by = { by: 'token "release manager" (tok-1)', comment: "" };

async function waitingDeploy() {
  const s = scope(db);
  const runId = await s.submit({ build: {}, deploy: { needs: ["build"], approval: { message: "Deploy to production?" } }, notify: { needs: ["deploy"] } });
  assert.deepEqual(await jobStates(db, runId), { build: "QUEUED", deploy: "QUEUED", notify: "QUEUED" }, "it waits only once its needs are done");
  const task = await claim(db, s.agent("a1"));
  await db.tx((client) => completeTask(client, db.boss, { taskId: task!.id, attempt: task!.attempt }, { state: RunState.SUCCEEDED, message: "", steps: [] }));
  return { s, runId };
}

test("a job whose needs are done waits for approval without a task, and an approval gives it one", async () => {
  const { s, runId } = await waitingDeploy();
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", deploy: "WAITING", notify: "QUEUED" });
  assert.deepEqual(await tasksOf(db, runId), { build: "done" }, "no task, so no slot, lock or resource held");
  assert.equal((await runRow(db, runId)).state, RunState.RUNNING);
  await db.tx((client) => approveJob(client, runId, "deploy", { ...by, comment: "go" }));
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", deploy: "QUEUED", notify: "QUEUED" });
  assert.deepEqual(await tasksOf(db, runId), { build: "done", deploy: "pending" });
  const lines = await journalLines(db, runId);
  assert.ok(lines.includes("deploy WAITING: waiting for approval: Deploy to production?"), lines.join("\n"));
  assert.ok(lines.includes('deploy QUEUED: approved by token "release manager" (tok-1): go'), lines.join("\n"));
  assert.ok(await claim(db, s.agent("a2")), "an agent takes it");
});

test("a rejection fails the job and skips what needs it; the run FAILS", async () => {
  const { runId } = await waitingDeploy();
  await db.tx((client) => rejectJob(client, runId, "deploy", { ...by, comment: "not today" }));
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", deploy: "FAILED", notify: "SKIPPED" });
  const { rows } = await db.pool.query("SELECT message FROM coordinator.jobs WHERE run_id = $1 AND name = 'deploy'", [runId]);
  assert.equal(rows[0].message, 'rejected by token "release manager" (tok-1): not today');
  assert.equal((await runRow(db, runId)).state, RunState.FAILED);
});

test("a job that is not waiting is refused, naming its state, and nothing changes", async () => {
  const { runId } = await waitingDeploy();
  await refused(db.tx((client) => approveJob(client, runId, "build", by)), Code.FailedPrecondition, /job build is SUCCEEDED, not waiting for approval/);
  await refused(db.tx((client) => approveJob(client, runId, "nope", by)), Code.NotFound, /has no job nope/);
  await db.tx((client) => approveJob(client, runId, "deploy", by));
  await refused(db.tx((client) => rejectJob(client, runId, "deploy", by)), Code.FailedPrecondition, /job deploy is QUEUED/);
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", deploy: "QUEUED", notify: "QUEUED" });
});

test("canceling the run cancels a waiting job", async () => {
  const { runId } = await waitingDeploy();
  await db.tx((client) => cancelRun(client, runId));
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", deploy: "CANCELED", notify: "CANCELED" });
  assert.equal((await runRow(db, runId)).state, RunState.CANCELED);
});
