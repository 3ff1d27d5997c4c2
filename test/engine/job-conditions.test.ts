import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { advanceRun } from "@otto/coordinator/engine/advance-run";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { startEngineDb, submit, type EngineDb } from "../helpers/engine-db.ts";
import { jobRow, jobStates, journalLines, putJobIn, RunState, runRow, stepStates, tasksOf } from "./engine-rows.ts";

// A job's condition (`if:`) decides, once its needs are final, whether it
// runs or is SKIPPED; without one a job is skipped as soon as a need did not
// succeed. Each test puts jobs in the states it needs and advances the run.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { SUCCEEDED, FAILED, RUNNING, CANCELED } = RunState;

async function setJob(runId: string, job: string, state: RunState): Promise<void> {
  await putJobIn(db, runId, job, state);
  await db.tx((client) => advanceRun(client, runId));
}

test("failure() runs after a failure, also one further up; always() runs after a skipped need; the rest are skipped", async () => {
  const runId = await submit(db, {
    build: {},
    test: { needs: ["build"] },
    report: { needs: ["build"], if: "failure()" },
    notify: { needs: ["test"], if: "failure()" },
    cleanup: { needs: ["test"], if: "${{ always() }}" },
    ok: { needs: ["build"], if: "success()" },
  });
  await setJob(runId, "build", FAILED);
  assert.deepEqual(await tasksOf(db, runId), { build: "done", cleanup: "pending", notify: "pending", report: "pending" });
  assert.deepEqual(await jobStates(db, runId), { build: "FAILED", test: "SKIPPED", report: "QUEUED", notify: "QUEUED", cleanup: "QUEUED", ok: "SKIPPED" });
  assert.equal((await jobRow(db, runId, "ok")).message, "skipped: if: success() is false");
  assert.deepEqual(await stepStates(db, runId, "ok"), ["SKIPPED"]);
  for (const job of ["report", "notify", "cleanup"]) await setJob(runId, job, SUCCEEDED);
  const run = await runRow(db, runId);
  assert.equal(run.state, FAILED, "a failed job fails the run, whatever ran after it");
  assert.equal((await journalLines(db, runId)).at(-1), "run FAILED: failed jobs: build");
});

test("a condition on the branch, the event and the job's env; a run whose jobs succeeded or were skipped SUCCEEDS", async () => {
  const runId = await submit(db, {
    build: {},
    deploy: { needs: ["build"], if: "branch == 'main'" },
    announce: { needs: ["deploy"] },
    api: { needs: ["build"], if: "event == 'API' && env.MODE != 'dry'", env: { MODE: "wet" } },
    dry: { if: "env.MODE == 'dry'" },
  });
  assert.deepEqual(await jobStates(db, runId), { build: "QUEUED", deploy: "QUEUED", announce: "QUEUED", api: "QUEUED", dry: "SKIPPED" });
  await setJob(runId, "build", SUCCEEDED);
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", deploy: "SKIPPED", announce: "SKIPPED", api: "QUEUED", dry: "SKIPPED" });
  assert.equal((await jobRow(db, runId, "deploy")).message, "skipped: if: branch == 'main' is false");
  assert.equal((await jobRow(db, runId, "announce")).message, 'skipped: needs "deploy", which was skipped');
  assert.deepEqual(await tasksOf(db, runId), { api: "pending", build: "done" });
  await setJob(runId, "api", SUCCEEDED);
  assert.equal((await runRow(db, runId)).state, SUCCEEDED);
  assert.equal((await journalLines(db, runId)).at(-1), "run SUCCEEDED: all jobs succeeded or were skipped (3 skipped)");
});

test("a job whose condition waits for every need to be final, not only the first that failed", async () => {
  const runId = await submit(db, { a: {}, b: {}, report: { needs: ["a", "b"], if: "failure()" } });
  await setJob(runId, "a", FAILED);
  await putJobIn(db, runId, "b", RUNNING);
  await db.tx((client) => advanceRun(client, runId));
  assert.equal((await jobStates(db, runId)).report, "QUEUED");
  assert.deepEqual(Object.keys(await tasksOf(db, runId)).sort(), ["a", "b"]);
  await setJob(runId, "b", SUCCEEDED);
  assert.equal((await tasksOf(db, runId)).report, "pending");
});

test("canceling the run cancels what has not started, except jobs whose condition calls always() or cancelled(): they run once their needs have stopped", async () => {
  const runId = await submit(db, {
    build: {},
    test: { needs: ["build"] },
    cleanup: { needs: ["build"], if: "always()" },
    onCancel: { needs: ["build"], if: "cancelled()" },
    onSuccess: { needs: ["build"], if: "success() || failure()" },
  });
  await putJobIn(db, runId, "build", RUNNING);
  await db.tx((client) => cancelRun(client, runId));
  assert.deepEqual(await jobStates(db, runId), { build: "RUNNING", test: "CANCELED", cleanup: "QUEUED", onCancel: "QUEUED", onSuccess: "CANCELED" });
  await setJob(runId, "build", CANCELED);
  assert.deepEqual(await tasksOf(db, runId), { build: "done", cleanup: "pending", onCancel: "pending" });
  assert.equal((await runRow(db, runId)).state, RUNNING);
  await setJob(runId, "cleanup", SUCCEEDED);
  await setJob(runId, "onCancel", SUCCEEDED);
  assert.equal((await runRow(db, runId)).state, CANCELED);
});

test("a run whose every job is skipped from the start SUCCEEDS without running anything", async () => {
  const runId = await submit(db, { deploy: { if: "branch == 'main'" }, after: { needs: ["deploy"] } });
  assert.deepEqual(await jobStates(db, runId), { deploy: "SKIPPED", after: "SKIPPED" });
  assert.deepEqual(await tasksOf(db, runId), {});
  assert.equal((await runRow(db, runId)).state, SUCCEEDED);
});
