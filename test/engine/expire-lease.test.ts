import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { advanceRun } from "@otto/coordinator/engine/advance-run";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { expireLease } from "@otto/coordinator/engine/expire-lease";
import { heartbeatTask } from "@otto/coordinator/engine/heartbeat-task";
import { reportSteps } from "@otto/coordinator/engine/report-steps";
import { claim, liveAttemptsOf, startEngineDb, type EngineDb, type JobSpec } from "../helpers/engine-db.ts";
import {
  jobRow,
  jobStates,
  journalLines,
  journalSince,
  lapseLease,
  queuedAdvances,
  reservationRows,
  RunState,
  runRow,
  scope,
  snapshot,
  stepStates,
  taskOf,
  tokenIsLive,
} from "./engine-rows.ts";

// expireLease ends an attempt whose agent stopped heartbeating within its
// lease: a failure of cause "agent lost" (CANCELED if its run was
// canceled), its reservations released and its token ended; the run
// advances through its shard's queue, not inline.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { RUNNING, SUCCEEDED, FAILED, CANCELED } = RunState;

async function started(jobs: Record<string, JobSpec> = { build: { steps: ["make", "make check", "make install"] }, test: { needs: ["build"] } }, leaseMs = 60_000) {
  const s = scope(db);
  const runId = await s.submit(jobs);
  const a = s.agent("a");
  const task = await claim(db, a, leaseMs);
  assert.ok(task);
  return { runId, task, agent: a, s };
}

function expire(taskId: string, runId: string) {
  return db.tx((client) => expireLease(client, db.boss, taskId, runId));
}

test("a lapsed lease fails the job as agent lost, releases what it held, ends the token, and queues the run's advance", async () => {
  const s = scope(db);
  const { runId, task, agent } = await started({ build: { steps: ["make", "make check", "make install"], locks: [s.lock("L")] }, test: { needs: ["build"] } });
  await db.tx((client) =>
    reportSteps(client, { taskId: task.id, attempt: 1 }, [
      { stepIndex: 0, state: RUNNING },
      { stepIndex: 0, state: SUCCEEDED, exitCode: 0 },
      { stepIndex: 1, state: RUNNING },
    ]),
  );
  await lapseLease(db, task.id);
  const before = await journalLines(db, runId);
  assert.equal(await queuedAdvances(db, runId), 0);

  const ended = await expire(task.id, runId);
  assert.deepEqual(ended && [ended.run_id, ended.job, ended.agent_id, ended.attempt], [runId, "build", agent.id, 1]);

  const message = `agent ${agent.id} lost: no heartbeat for attempt 1 within its lease`;
  const job = await jobRow(db, runId, "build");
  assert.deepEqual([job.state, job.message], [FAILED, message]);
  assert.deepEqual(await stepStates(db, runId, "build"), ["SUCCEEDED exit 0", "FAILED", "CANCELED"]);
  assert.equal((await taskOf(db, runId, "build")).status, "done");
  assert.deepEqual(await reservationRows(db, { runId }), []);
  assert.deepEqual(await liveAttemptsOf(db, runId), []);
  assert.equal(await tokenIsLive(db, runId, "build", 1, agent.id), false);
  assert.deepEqual(await journalSince(db, runId, before), [
    `build RUNNING: lease of attempt 1 expired; released slot on ${agent.id}, lock ${s.lock("L")}`,
    `build FAILED: ${message}`,
    "build/make check FAILED",
    "build/make install CANCELED",
  ]);

  // Not advanced here: the shard's queue has the work.
  assert.deepEqual(await jobStates(db, runId), { build: "FAILED", test: "QUEUED" });
  assert.equal((await runRow(db, runId)).state, RUNNING);
  assert.equal(await queuedAdvances(db, runId), 1);
  await db.tx((client) => advanceRun(client, runId));
  assert.deepEqual(await jobStates(db, runId), { build: "FAILED", test: "SKIPPED" });
  assert.equal((await runRow(db, runId)).state, FAILED);
});

test("a lease that has not lapsed, or was renewed by a heartbeat, is left alone", async () => {
  const { runId, task, agent } = await started();
  const before = await snapshot(db, runId);
  assert.equal(await expire(task.id, runId), undefined);
  assert.deepEqual(await snapshot(db, runId), before);

  // Lapsed, then the agent's heartbeat came first.
  await lapseLease(db, task.id);
  await heartbeatTask(db.pool, { taskId: task.id, attempt: 1, agentId: agent.id }, 60_000);
  assert.equal(await expire(task.id, runId), undefined);
  assert.equal((await taskOf(db, runId, "build")).status, "assigned");
  assert.equal(await tokenIsLive(db, runId, "build", 1, agent.id), true);
  assert.equal(await queuedAdvances(db, runId), 0);
});

test("a task that ended meanwhile is left alone", async () => {
  const { runId, task } = await started({ build: {} });
  await db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: 1 }, { state: SUCCEEDED, message: "", steps: [] }));
  await lapseLease(db, task.id);
  const before = await snapshot(db, runId);
  assert.equal(await expire(task.id, runId), undefined);
  assert.deepEqual(await snapshot(db, runId), before);
  assert.equal(await queuedAdvances(db, runId), 0);
});

test("the lapsed lease of a canceled run's task ends its job CANCELED", async () => {
  const { runId, task, agent } = await started();
  await db.tx((client) => cancelRun(client, runId));
  await lapseLease(db, task.id);
  assert.ok(await expire(task.id, runId));
  const job = await jobRow(db, runId, "build");
  assert.deepEqual([job.state, job.message], [CANCELED, `agent ${agent.id} lost: no heartbeat for attempt 1 within its lease`]);
  assert.deepEqual(await stepStates(db, runId, "build"), ["CANCELED", "CANCELED", "CANCELED"]);
  assert.equal(await queuedAdvances(db, runId), 1);
  await db.tx((client) => advanceRun(client, runId));
  assert.equal((await runRow(db, runId)).state, CANCELED);
});

test("a retried attempt needs no advance: the job waits for its next attempt", async () => {
  const { runId, task } = await started({ build: { retry: { max: 1 } } });
  await lapseLease(db, task.id);
  assert.ok(await expire(task.id, runId));
  assert.equal((await jobRow(db, runId, "build")).state, RunState.QUEUED);
  assert.equal((await taskOf(db, runId, "build")).status, "pending");
  assert.equal(await queuedAdvances(db, runId), 0);
});

test("a lease of one millisecond lapses by itself", async () => {
  const { runId, task } = await started({ build: {} }, 1);
  const deadline = Date.now() + 10_000;
  let ended;
  while (!(ended = await expire(task.id, runId))) assert.ok(Date.now() < deadline, "the lease lapsed within 10 s");
  assert.equal(ended.job, "build");
  assert.equal((await jobRow(db, runId, "build")).state, FAILED);
});
