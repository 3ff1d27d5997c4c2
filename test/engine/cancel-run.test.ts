import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { heartbeatTask } from "@otto/coordinator/engine/heartbeat-task";
import { reportSteps } from "@otto/coordinator/engine/report-steps";
import { claim, liveAttemptsOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import {
  jobRow,
  jobStates,
  journalLines,
  journalSince,
  refused,
  reservationRows,
  RunState,
  runRow,
  scope,
  snapshot,
  stepStates,
  taskOf,
  tasksOf,
  tokenIsLive,
} from "./engine-rows.ts";

// cancelRun: the jobs of a run that have not started never will (their
// waiting tasks withdrawn, the jobs CANCELED at once), the agents running
// its tasks hear "cancel", and the run ends CANCELED when nothing runs any
// more. A finished run is left as it is.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { RUNNING, SUCCEEDED, FAILED, CANCELED } = RunState;

function cancel(runId: string) {
  return db.tx((client) => cancelRun(client, runId));
}

test("a run that never started is canceled at once: tasks withdrawn, jobs and steps CANCELED, the run finished", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: { steps: ["make", "make check"] }, lint: {}, test: { needs: ["build"] } });
  assert.deepEqual(await tasksOf(db, runId), { build: "pending", lint: "pending" });
  const before = await journalLines(db, runId);
  await cancel(runId);

  assert.deepEqual(await tasksOf(db, runId), { build: "done", lint: "done" });
  assert.deepEqual(await jobStates(db, runId), { build: "CANCELED", lint: "CANCELED", test: "CANCELED" });
  assert.equal((await jobRow(db, runId, "test")).message, "run canceled before the job started");
  assert.deepEqual(await stepStates(db, runId, "build"), ["CANCELED", "CANCELED"]);
  const run = await runRow(db, runId);
  assert.deepEqual([run.state, run.cancel_requested, run.started_at], [CANCELED, true, null]);
  assert.ok(run.finished_at);
  assert.deepEqual(await journalSince(db, runId, before), [
    "run QUEUED: cancel requested",
    "build CANCELED: run canceled before the job started",
    "build/make CANCELED",
    "build/make check CANCELED",
    "lint CANCELED: run canceled before the job started",
    "lint/true CANCELED",
    "test CANCELED: run canceled before the job started",
    "test/true CANCELED",
    "run CANCELED: run canceled",
  ]);
  // Nothing of it is handed out any more.
  assert.equal(await claim(db, s.agent("a")), undefined);
});

test("a running run: unstarted jobs end at once, running tasks are asked to stop, and the run ends with its last running job", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: { steps: ["make", "make check"], locks: [s.lock("L")] }, lint: { runsOn: ["other"] }, test: { needs: ["build"] } });
  const a = s.agent("a");
  const task = await claim(db, a);
  assert.equal(task?.job, "build");
  await db.tx((client) => reportSteps(client, { taskId: task.id, attempt: 1 }, [{ stepIndex: 0, state: RUNNING }]));
  const before = await journalLines(db, runId);
  await cancel(runId);

  assert.deepEqual(await jobStates(db, runId), { build: "RUNNING", lint: "CANCELED", test: "CANCELED" });
  assert.deepEqual(await tasksOf(db, runId), { build: "assigned", lint: "done" });
  const running = await taskOf(db, runId, "build");
  assert.equal(running.cancel_requested, true);
  // The running attempt keeps what it holds until it stops.
  assert.equal((await reservationRows(db, { runId })).length, 2);
  assert.equal(await tokenIsLive(db, runId, "build", 1, a.id), true);
  const run = await runRow(db, runId);
  assert.deepEqual([run.state, run.cancel_requested, run.finished_at], [RUNNING, true, null]);
  assert.deepEqual(await journalSince(db, runId, before), [
    "run RUNNING: cancel requested",
    "lint CANCELED: run canceled before the job started",
    "lint/true CANCELED",
    "test CANCELED: run canceled before the job started",
    "test/true CANCELED",
  ]);

  // Its agent hears it in its next heartbeat or report.
  assert.deepEqual(await heartbeatTask(db.pool, { taskId: task.id, attempt: 1, agentId: a.id }, 60_000), { cancel: true });
  assert.deepEqual(await db.tx((client) => reportSteps(client, { taskId: task.id, attempt: 1 }, [])), { cancel: true });

  const beforeEnd = await journalLines(db, runId);
  await db.tx((client) =>
    completeTask(client, db.boss, { taskId: task.id, attempt: 1 }, { state: CANCELED, message: "canceled", steps: [{ stepIndex: 0, state: CANCELED }] }),
  );
  assert.deepEqual(await jobStates(db, runId), { build: "CANCELED", lint: "CANCELED", test: "CANCELED" });
  assert.deepEqual(await reservationRows(db, { runId }), []);
  assert.deepEqual(await liveAttemptsOf(db, runId), []);
  assert.equal((await runRow(db, runId)).state, CANCELED);
  assert.deepEqual(await journalSince(db, runId, beforeEnd), [
    "build/make CANCELED",
    "build CANCELED: canceled",
    "build/make check CANCELED",
    "run CANCELED: run canceled",
  ]);
});

test("a job waiting for its retry is withdrawn and canceled too", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: { retry: { max: 2 } }, other: {} });
  const a = s.agent("a");
  const first = await claim(db, { ...a, slot: 0 });
  const second = await claim(db, { ...a, slot: 1 });
  const build = [first, second].find((t) => t?.job === "build")!;
  await db.tx((client) => completeTask(client, db.boss, { taskId: build.id, attempt: 1 }, { state: FAILED, message: "failed", steps: [] }));
  assert.deepEqual(await jobStates(db, runId), { build: "QUEUED", other: "RUNNING" });
  await cancel(runId);
  assert.deepEqual(await jobStates(db, runId), { build: "CANCELED", other: "RUNNING" });
  assert.deepEqual(await tasksOf(db, runId), { build: "done", other: "assigned" });
  assert.equal((await jobRow(db, runId, "build")).message, "run canceled before the job started");
  assert.equal((await runRow(db, runId)).state, RUNNING);
});

test("a finished run is left as it is, and a second cancel changes nothing", async () => {
  const s = scope(db);
  const done = await s.submit({ build: {} });
  const task = await claim(db, s.agent("a"));
  await db.tx((client) => completeTask(client, db.boss, { taskId: task!.id, attempt: 1 }, { state: SUCCEEDED, message: "", steps: [] }));
  assert.equal((await runRow(db, done)).state, SUCCEEDED);
  const finished = await snapshot(db, done);
  await cancel(done);
  assert.deepEqual(await snapshot(db, done), finished);
  assert.equal((await runRow(db, done)).cancel_requested, false);

  const running = await s.submit({ build: {}, later: { needs: ["build"] } });
  await claim(db, s.agent("b"));
  await cancel(running);
  const once = await snapshot(db, running);
  await cancel(running);
  assert.deepEqual(await snapshot(db, running), once);
});

test("an unknown run is not found", async () => {
  await refused(cancel("00000000-0000-4000-8000-000000000000"), Code.NotFound, /not found/);
});
