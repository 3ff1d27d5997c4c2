import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { advanceRun } from "@otto/coordinator/engine/advance-run";
import { tasksChannel } from "@otto/coordinator/engine/apply-changes";
import { startEngineDb, submit, type EngineDb } from "../helpers/engine-db.ts";
import { jobRow, jobStates, putJobIn, journalLines, journalSince, listen, RunState, runRow, stepStates, tasksOf } from "./engine-rows.ts";

// advanceRun moves a run as far as its jobs' states allow. Each test puts
// the jobs in the states it needs directly in the rows (as an agent's
// answers would have left them) and then advances the run.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED } = RunState;

function setJob(runId: string, job: string, state: RunState): Promise<void> {
  return putJobIn(db, runId, job, state);
}

function advance(runId: string, runLocked = false): Promise<void> {
  return db.tx((client) => advanceRun(client, runId, { runLocked }));
}

test("a job gets a task only when every job it needs succeeded", async () => {
  const runId = await submit(db, {
    build: {},
    lint: {},
    test: { needs: ["build"] },
    package: { needs: ["build", "lint"] },
    deploy: { needs: ["test", "package"] },
  });
  assert.deepEqual(await tasksOf(db, runId), { build: "pending", lint: "pending" });

  await setJob(runId, "build", SUCCEEDED);
  await setJob(runId, "lint", RUNNING);
  const before = await journalLines(db, runId);
  await advance(runId);
  // package still waits for lint; deploy for both.
  assert.deepEqual(await tasksOf(db, runId), { build: "done", lint: "assigned", test: "pending" });
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", lint: "RUNNING", test: "QUEUED", package: "QUEUED", deploy: "QUEUED" });
  // Making a task ready is no state change: nothing is journaled.
  assert.deepEqual(await journalSince(db, runId, before), []);

  // Advancing again changes nothing (and makes no second task).
  await advance(runId);
  assert.deepEqual(await tasksOf(db, runId), { build: "done", lint: "assigned", test: "pending" });

  await setJob(runId, "lint", SUCCEEDED);
  await setJob(runId, "test", SUCCEEDED);
  await advance(runId);
  assert.deepEqual(await tasksOf(db, runId), { build: "done", lint: "done", package: "pending", test: "done" });
  await setJob(runId, "package", SUCCEEDED);
  await advance(runId);
  assert.deepEqual(await tasksOf(db, runId), { build: "done", deploy: "pending", lint: "done", package: "done", test: "done" });
  assert.equal((await runRow(db, runId)).state, RUNNING);
});

test("new tasks wake the agents waiting for work", async () => {
  const runId = await submit(db, { build: {}, test: { needs: ["build"] } });
  await setJob(runId, "build", SUCCEEDED);
  const listener = await listen(db, tasksChannel);
  try {
    await advance(runId);
    await listener.atLeast(1);
  } finally {
    await listener.stop();
  }
  assert.deepEqual(await tasksOf(db, runId), { build: "done", test: "pending" });
});

test("the jobs that need a failed job are skipped, each message naming the job it needed, and the run fails once nothing runs", async () => {
  // "package" comes before "test", which it needs: it is skipped in a
  // second pass, after test.
  const runId = await submit(db, {
    build: { steps: ["make", "make check"] },
    docs: {},
    package: { needs: ["test"] },
    test: { needs: ["build"], steps: ["make test"] },
    publish: { needs: ["docs"] },
  });
  await setJob(runId, "build", FAILED);
  await setJob(runId, "docs", RUNNING);
  const before = await journalLines(db, runId);
  await advance(runId);

  assert.deepEqual(await jobStates(db, runId), { build: "FAILED", docs: "RUNNING", package: "SKIPPED", test: "SKIPPED", publish: "QUEUED" });
  assert.equal((await jobRow(db, runId, "test")).message, 'skipped: needs "build", which failed');
  assert.equal((await jobRow(db, runId, "package")).message, 'skipped: needs "test", which was skipped');
  assert.ok((await jobRow(db, runId, "test")).finished_at, "a skipped job has finished");
  assert.deepEqual(await stepStates(db, runId, "test"), ["SKIPPED"]);
  assert.deepEqual(await stepStates(db, runId, "package"), ["SKIPPED"]);
  // Skipped jobs never get a task; the run goes on while docs runs.
  assert.deepEqual(await tasksOf(db, runId), { build: "done", docs: "assigned" });
  assert.equal((await runRow(db, runId)).state, RUNNING);
  assert.deepEqual(await journalSince(db, runId, before), [
    'test SKIPPED: skipped: needs "build", which failed',
    "test/make test SKIPPED",
    'package SKIPPED: skipped: needs "test", which was skipped',
    "package/true SKIPPED",
  ]);

  await setJob(runId, "docs", SUCCEEDED);
  await advance(runId);
  assert.deepEqual(await tasksOf(db, runId), { build: "done", docs: "done", publish: "pending" });
  await setJob(runId, "publish", SUCCEEDED);
  const beforeEnd = await journalLines(db, runId);
  await advance(runId);
  const run = await runRow(db, runId);
  assert.equal(run.state, FAILED);
  assert.ok(run.finished_at);
  assert.deepEqual(await journalSince(db, runId, beforeEnd), ["run FAILED: failed jobs: build"]);
});

test("a run whose jobs all succeeded ends SUCCEEDED", async () => {
  const runId = await submit(db, { a: {}, b: { needs: ["a"] } });
  await setJob(runId, "a", SUCCEEDED);
  await advance(runId);
  await setJob(runId, "b", SUCCEEDED);
  await advance(runId);
  const run = await runRow(db, runId);
  assert.equal(run.state, SUCCEEDED);
  assert.ok(run.finished_at);
  assert.deepEqual((await journalLines(db, runId)).at(-1), "run SUCCEEDED: all jobs succeeded");
});

test("the run's state names every failed job; a job canceled by its run's cancel makes it CANCELED", async () => {
  const runId = await submit(db, { a: {}, b: {}, c: {} });
  await setJob(runId, "a", FAILED);
  await setJob(runId, "b", SUCCEEDED);
  await setJob(runId, "c", FAILED);
  await advance(runId);
  assert.equal((await runRow(db, runId)).state, FAILED);
  assert.deepEqual((await journalLines(db, runId)).at(-1), "run FAILED: failed jobs: a, c");

  const canceled = await submit(db, { a: {}, b: { needs: ["a"] } });
  await setJob(canceled, "a", CANCELED);
  await db.pool.query("UPDATE coordinator.runs SET cancel_requested = true WHERE id = $1", [canceled]);
  await advance(canceled);
  assert.deepEqual(await jobStates(db, canceled), { a: "CANCELED", b: "CANCELED" });
  assert.equal((await jobRow(db, canceled, "b")).message, "run canceled before the job started");
  assert.equal((await runRow(db, canceled)).state, CANCELED);
  assert.deepEqual((await journalLines(db, canceled)).slice(-3), ["b CANCELED: run canceled before the job started", "b/true CANCELED", "run CANCELED: run canceled"]);
});

test("a finished run is left as it is", async () => {
  const runId = await submit(db, { a: {}, b: { needs: ["a"] } });
  await setJob(runId, "a", SUCCEEDED);
  await advance(runId);
  await setJob(runId, "b", SUCCEEDED);
  await advance(runId);
  assert.equal((await runRow(db, runId)).state, SUCCEEDED);
  const before = await journalLines(db, runId);
  // Even with a job that looks ready, nothing is created for a finished run.
  await db.pool.query("UPDATE coordinator.jobs SET state = $2 WHERE run_id = $1 AND name = 'b'", [runId, QUEUED]);
  await db.pool.query("DELETE FROM coordinator.tasks WHERE run_id = $1 AND job = 'b'", [runId]);
  await advance(runId, true);
  assert.deepEqual(await tasksOf(db, runId), { a: "done" });
  assert.deepEqual(await journalSince(db, runId, before), []);
  assert.equal((await runRow(db, runId)).state, SUCCEEDED);
});

test("advancing a run that does not exist does nothing", async () => {
  await advance("00000000-0000-4000-8000-000000000000");
});
