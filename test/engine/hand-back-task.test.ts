import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { tasksChannel } from "@otto/coordinator/engine/apply-changes";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { handBackTask } from "@otto/coordinator/engine/hand-back-task";
import { reportSteps } from "@otto/coordinator/engine/report-steps";
import { claim, liveAttemptsOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import {
  jobRow,
  journalLines,
  journalSince,
  listen,
  refused,
  reservationRows,
  RunState,
  runRow,
  scope,
  snapshot,
  stepStates,
  taskOf,
  tokenIsLive,
} from "./engine-rows.ts";

// handBackTask: an agent that is stopping gives back a task it will not
// finish. What it held is released, its token ends, and the job waits for
// its next attempt on another agent, the hand-back not counted as a
// failure. A task of a canceled run is not given back but ends CANCELED.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { QUEUED, RUNNING, SUCCEEDED, CANCELED } = RunState;

async function started() {
  const s = scope(db);
  const runId = await s.submit({ build: { steps: ["make", "make check", "make install"], locks: [s.lock("L")] } });
  const a = s.agent("a");
  const task = await claim(db, a);
  assert.ok(task);
  await db.tx((client) =>
    reportSteps(client, { taskId: task.id, attempt: 1 }, [
      { stepIndex: 0, state: RUNNING },
      { stepIndex: 0, state: SUCCEEDED, exitCode: 0 },
      { stepIndex: 1, state: RUNNING },
    ]),
  );
  return { runId, task, agent: a, s };
}

function handBack(taskId: string, attempt: number, agentId: string) {
  return db.tx((client) => handBackTask(client, db.boss, { taskId, attempt, agentId }));
}

test("a handed back task waits for its next attempt: job and steps queued, everything released, its token ended", async () => {
  const { runId, task, agent, s } = await started();
  const before = await journalLines(db, runId);
  const listener = await listen(db, tasksChannel);
  try {
    await handBack(task.id, 1, agent.id);
    // The task waits again: agents waiting for work hear of it.
    await listener.atLeast(1);
  } finally {
    await listener.stop();
  }

  const why = `attempt 1 handed back by agent ${agent.id}, which is stopping (released slot on ${agent.id}, lock ${s.lock("L")}); will run again as attempt 2`;
  const job = await jobRow(db, runId, "build");
  assert.deepEqual([job.state, job.message, job.agent_id], [QUEUED, why, ""]);
  assert.deepEqual(await stepStates(db, runId, "build"), ["QUEUED", "QUEUED", "QUEUED"]);
  const row = await taskOf(db, runId, "build");
  assert.deepEqual([row.status, row.attempt, row.agent_id, row.handbacks, row.started], ["pending", 1, "", 1, false]);
  assert.deepEqual(await reservationRows(db, { runId }), []);
  assert.deepEqual(await liveAttemptsOf(db, runId), []);
  assert.equal(await tokenIsLive(db, runId, "build", 1, agent.id), false);
  assert.equal((await runRow(db, runId)).state, RUNNING);
  assert.deepEqual(await journalSince(db, runId, before), [
    `build QUEUED: ${why}`,
    "build/make QUEUED",
    "build/make check QUEUED",
  ]);

  // Another agent takes it as attempt 2, and can give it back too.
  const b = s.agent("b");
  const again = await claim(db, b);
  assert.deepEqual(again && [again.id, again.attempt], [task.id, 2]);
  assert.equal(await tokenIsLive(db, runId, "build", 2, b.id), true);
  assert.equal(await tokenIsLive(db, runId, "build", 1, agent.id), false, "the attempt handed back stays ended");
  await handBack(task.id, 2, b.id);
  assert.deepEqual([(await taskOf(db, runId, "build")).handbacks, (await taskOf(db, runId, "build")).status], [2, "pending"]);
});

test("a task of a canceled run is not given back: it ends CANCELED, and so does the run", async () => {
  const { runId, task, agent } = await started();
  await db.tx((client) => cancelRun(client, runId));
  assert.equal((await taskOf(db, runId, "build")).cancel_requested, true);
  const before = await journalLines(db, runId);
  await handBack(task.id, 1, agent.id);

  const job = await jobRow(db, runId, "build");
  assert.deepEqual([job.state, job.message], [CANCELED, "canceled"]);
  assert.deepEqual(await stepStates(db, runId, "build"), ["SUCCEEDED exit 0", "CANCELED", "CANCELED"]);
  const row = await taskOf(db, runId, "build");
  assert.deepEqual([row.status, row.handbacks], ["done", 0]);
  assert.deepEqual(await reservationRows(db, { runId }), []);
  assert.deepEqual(await liveAttemptsOf(db, runId), []);
  assert.equal((await runRow(db, runId)).state, CANCELED);
  assert.deepEqual(await journalSince(db, runId, before), [
    "build CANCELED: canceled",
    "build/make check CANCELED",
    "build/make install CANCELED",
    "run CANCELED: run canceled",
  ]);
});

test("another agent's task, a stale attempt and an unknown task are refused, changing nothing", async () => {
  const { runId, task, agent, s } = await started();
  const before = await snapshot(db, runId);
  await refused(handBack(task.id, 1, s.agent("other").id), Code.PermissionDenied, /not assigned to agent/);
  await refused(handBack(task.id, 2, agent.id), Code.FailedPrecondition, /no longer current/);
  await refused(handBack("00000000-0000-4000-8000-000000000000", 1, agent.id), Code.NotFound);
  assert.deepEqual(await snapshot(db, runId), before);
});

test("a hand-back sent again finds its attempt ended (failed precondition) and changes nothing", async () => {
  const { runId, task, agent } = await started();
  await handBack(task.id, 1, agent.id);
  const after = await snapshot(db, runId);
  await refused(handBack(task.id, 1, agent.id), Code.FailedPrecondition, /no longer current/);
  assert.deepEqual(await snapshot(db, runId), after);
});
