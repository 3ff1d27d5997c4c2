import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { rerunRun } from "@otto/coordinator/engine/rerun-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { startProjectRun } from "@otto/coordinator/engine/start-project-run";
import { failUnpreparedRun } from "@otto/coordinator/engine/fail-unprepared-run";
import { prepareQueue } from "@otto/coordinator/engine/project-run-queue";
import { claim, project, run, type EngineDb, startEngineDb } from "../helpers/engine-db.ts";
import { jobStates, journalLines, refused, RunState, runRow, scope, stepsOf, tasksOf } from "./engine-rows.ts";

// rerunRun: a finished run's pipeline runs again as a new run linked to it;
// with failedOnly the jobs that succeeded are reused (QUEUED -> SUCCEEDED at
// once) and only the rest run as their needs allow; a run not yet final is
// refused.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

// Runs a job's task to the given end.
async function finish(runId: string, agentOf: ReturnType<typeof scope>["agent"], name: string, state: RunState) {
  const task = await claim(db, agentOf(`a-${name}`));
  assert.ok(task, `a task for ${name}`);
  assert.equal(task.job, name);
  await db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: task.attempt }, { state, message: "", steps: [] }));
  return runId;
}

const rerun = (runId: string, failedOnly: boolean) => db.tx((client) => rerunRun(client, db.boss, { runId, failedOnly, maxActiveRuns: 1_000 }));

test("a run not yet final is refused, and so is a rerun of failed jobs when none failed", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: {} });
  await refused(rerun(runId, false), Code.FailedPrecondition, /is QUEUED: rerun it once it has finished/);
  await finish(runId, s.agent, "build", RunState.SUCCEEDED);
  assert.equal((await runRow(db, runId)).state, RunState.SUCCEEDED);
  await refused(rerun(runId, true), Code.FailedPrecondition, /nothing failed to run again/);
  await refused(rerun("0b5e4c52-7f5a-4d0e-9a55-3d6f6b2b1d11", false), Code.NotFound);
});

test("failedOnly reuses what succeeded and runs the rest as their needs allow", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: { steps: ["make", "make check"] }, lint: {}, test: { needs: ["build"] }, deploy: { needs: ["test", "lint"] } });
  await finish(runId, s.agent, "build", RunState.SUCCEEDED);
  await finish(runId, s.agent, "lint", RunState.FAILED);
  await finish(runId, s.agent, "test", RunState.SUCCEEDED);
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", lint: "FAILED", test: "SUCCEEDED", deploy: "SKIPPED" });

  const again = await rerun(runId, true);
  const stored = await run(db, again);
  assert.equal(stored.rerunOf, runId);
  assert.equal(stored.state, RunState.QUEUED);
  assert.deepEqual(await jobStates(db, again), { build: "SUCCEEDED", lint: "QUEUED", test: "SUCCEEDED", deploy: "QUEUED" });
  assert.equal(stored.jobs.find((j) => j.name === "build")?.message, `reused from run ${runId}, attempt 1`);
  assert.deepEqual((await stepsOf(db, again, "build")).map((st) => st.state), [RunState.SUCCEEDED, RunState.SUCCEEDED]);
  assert.deepEqual(await tasksOf(db, again), { lint: "pending" }, "only lint is ready: deploy waits for it");
  const lines = await journalLines(db, again);
  assert.match(lines[0], new RegExp(`rerun of run ${runId} \\(what did not succeed: 2 of 4 jobs reused\\)`));
  assert.ok(lines.includes(`build SUCCEEDED: reused from run ${runId}, attempt 1`), lines.join("\n"));

  await finish(again, s.agent, "lint", RunState.SUCCEEDED);
  await finish(again, s.agent, "deploy", RunState.SUCCEEDED);
  assert.equal((await runRow(db, again)).state, RunState.SUCCEEDED);
});

test("a full rerun runs every job again", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: {}, test: { needs: ["build"] } });
  await finish(runId, s.agent, "build", RunState.FAILED);
  const again = await rerun(runId, false);
  assert.deepEqual(await jobStates(db, again), { build: "QUEUED", test: "QUEUED" });
  assert.deepEqual(await tasksOf(db, again), { build: "pending" });
});

test("a project's run gets the project's next number, and one that never got its jobs reads its pipeline again", async () => {
  const name = await project(db);
  const source = { event: "push", ref: "refs/heads/main", branch: "main", sha: "f".repeat(40) };
  const { runId } = await db.tx((client) => startProjectRun(client, db.boss, { project: name, source, requestId: "", maxActiveRuns: 100 }));
  await db.tx((client) => failUnpreparedRun(client, runId, "no pipeline to run"));
  const again = await rerun(runId, true);
  const stored = await run(db, again);
  assert.deepEqual([stored.rerunOf, stored.source?.number, stored.source?.sha, stored.jobs.length], [runId, 2n, source.sha, 0]);
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND data->>'runId' = $2", [prepareQueue, again]);
  assert.equal(rows[0].n, 1, "its pipeline file is read again");
});
