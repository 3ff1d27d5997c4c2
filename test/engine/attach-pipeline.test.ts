import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { attachPipeline } from "@otto/coordinator/engine/attach-pipeline";
import { startProjectRun } from "@otto/coordinator/engine/start-project-run";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { pipelineOf, project, run, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobStates, journalLines, RunState, runRow, stepsOf, tasksOf } from "./engine-rows.ts";

// attachPipeline: a project's run gets the jobs of the pipeline read from
// its commit, its first jobs ready at once; a run no longer waiting for
// them (canceled, given them already) is left as it is.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const push = { event: "push", ref: "refs/heads/main", branch: "main", sha: "c".repeat(40) };

async function waitingRun(): Promise<string> {
  const name = await project(db);
  return (await db.tx((client) => startProjectRun(client, db.boss, { project: name, source: push, requestId: "", maxActiveRuns: 100 }))).runId;
}

test("the run gets the pipeline's name, jobs and steps, and its first jobs get tasks", async () => {
  const runId = await waitingRun();
  const pipeline = pipelineOf({ build: { steps: ["make", "make check"] }, test: { needs: ["build"] } }, "app ci");
  assert.equal(await db.tx((client) => attachPipeline(client, runId, pipeline, "pipeline read")), "attached");
  const stored = await run(db, runId);
  assert.equal(stored.name, "app ci");
  assert.equal(stored.state, RunState.QUEUED);
  assert.deepEqual(await jobStates(db, runId), { build: "QUEUED", test: "QUEUED" });
  assert.deepEqual((await stepsOf(db, runId, "build")).map((s) => s.name), ["make", "make check"]);
  assert.deepEqual(await tasksOf(db, runId), { build: "pending" });
  const lines = await journalLines(db, runId);
  assert.equal(lines.at(-1), "run QUEUED: pipeline read");
  const { rows } = await db.pool.query("SELECT pipeline->>'name' AS name FROM coordinator.runs WHERE id = $1", [runId]);
  assert.equal(rows[0].name, "app ci");
});

test("a second attach (the same work tried again) changes nothing", async () => {
  const runId = await waitingRun();
  await db.tx((client) => attachPipeline(client, runId, pipelineOf({ build: {} }), "first"));
  const before = await journalLines(db, runId);
  assert.equal(await db.tx((client) => attachPipeline(client, runId, pipelineOf({ other: {} }), "second")), "not waiting");
  assert.deepEqual(await jobStates(db, runId), { build: "QUEUED" });
  assert.deepEqual(await journalLines(db, runId), before);
});

test("a run canceled while its pipeline was being read stays CANCELED, without jobs", async () => {
  const runId = await waitingRun();
  await db.tx((client) => cancelRun(client, runId));
  assert.equal(await db.tx((client) => attachPipeline(client, runId, pipelineOf({ build: {} }), "late")), "not waiting");
  assert.equal((await runRow(db, runId)).state, RunState.CANCELED);
  assert.deepEqual(await jobStates(db, runId), {});
});
