import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { rerunRun } from "@otto/coordinator/engine/rerun-run";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { claim, pipelineOf, startEngineDb, type EngineDb, type JobSpec } from "../helpers/engine-db.ts";
import { jobRow, RunState, scope } from "./engine-rows.ts";

// What a claim hands out as the attempts whose artifacts the job gets (its
// task's artifact sources, which its token vouches for): each need that
// SUCCEEDED and keeps artifacts, unless the job opts out of it, at the
// attempt that succeeded; for a job a rerun reused, the attempt of the run
// it was reused from, however many reruns ago.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

interface Spec extends JobSpec {
  artifacts?: string[];
  needsWithoutArtifacts?: string[];
}

async function submit(s: ReturnType<typeof scope>, jobs: Record<string, Spec>): Promise<string> {
  const pipeline = pipelineOf(Object.fromEntries(Object.entries(jobs).map(([name, job]) => [name, { ...job, runsOn: [s.label] }])));
  for (const job of pipeline.jobs) {
    job.artifacts = jobs[job.name].artifacts ?? [];
    job.needsWithoutArtifacts = jobs[job.name].needsWithoutArtifacts ?? [];
  }
  return (await submitRun(db.pool, pipeline, 1_000, randomUUID())).runId;
}

// Claims the next task (it must be `job`'s) and ends its attempt in `state`;
// answers what the claim handed out.
async function finish(s: ReturnType<typeof scope>, job: string, state: RunState) {
  const task = await claim(db, s.agent("a"));
  assert.equal(task?.job, job);
  await db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: task.attempt }, { state, message: "", steps: [] }));
  return task;
}

const rerun = (runId: string) => db.tx((client) => rerunRun(client, db.boss, { runId, failedOnly: true, maxActiveRuns: 1_000 }));

test("a claim hands out the attempts that succeeded of the needs that keep artifacts, but not those the job opts out of", async () => {
  const s = scope(db);
  const runId = await submit(s, {
    build: { artifacts: ["out/app.txt"], retry: { max: 1 } },
    docs: { artifacts: ["site/index.html"] },
    lint: {},
    test: { needs: ["build", "docs", "lint"], needsWithoutArtifacts: ["docs"] },
    bundle: { needs: ["docs", "build"] },
  });
  const first = await finish(s, "build", RunState.FAILED);
  assert.deepEqual(first.artifact_sources, [], "a job without needs gets nothing");
  await finish(s, "docs", RunState.SUCCEEDED);
  await finish(s, "lint", RunState.SUCCEEDED);
  const retried = await finish(s, "build", RunState.SUCCEEDED);
  assert.equal(retried.attempt, 2);

  const test_ = await finish(s, "test", RunState.SUCCEEDED);
  assert.deepEqual(test_.artifact_sources, [{ runId, job: "build", attempt: 2 }], "build's attempt that succeeded; docs opted out, lint keeps nothing");
  const bundle = await finish(s, "bundle", RunState.SUCCEEDED);
  assert.deepEqual(bundle.artifact_sources, [
    { runId, job: "build", attempt: 2 },
    { runId, job: "docs", attempt: 1 },
  ], "in the order of the pipeline's jobs");
});

test("a job that needs a job a rerun reused gets the artifacts of the attempt it was reused from, across reruns", async () => {
  const s = scope(db);
  const first = await submit(s, { build: { artifacts: ["out/app.txt"] }, test: { needs: ["build"] } });
  await finish(s, "build", RunState.SUCCEEDED);
  await finish(s, "test", RunState.FAILED);

  const second = await rerun(first);
  assert.deepEqual([(await jobRow(db, second, "build")).state, (await jobRow(db, second, "build")).message], [RunState.SUCCEEDED, `reused from run ${first}, attempt 1`]);
  const inSecond = await finish(s, "test", RunState.FAILED);
  assert.equal(inSecond.run_id, second);
  assert.deepEqual(inSecond.artifact_sources, [{ runId: first, job: "build", attempt: 1 }]);

  // Rerun again: build was reused in the second run too, and still comes
  // from the first run's attempt (the second run has no attempt of it).
  const third = await rerun(second);
  assert.equal((await jobRow(db, third, "build")).message, `reused from run ${first}, attempt 1`);
  const inThird = await finish(s, "test", RunState.SUCCEEDED);
  assert.equal(inThird.run_id, third);
  assert.deepEqual(inThird.artifact_sources, [{ runId: first, job: "build", attempt: 1 }]);
});

test("a claim given again (its answer was lost) hands out the same sources", async () => {
  const s = scope(db);
  const runId = await submit(s, { build: { artifacts: ["a.txt"] }, test: { needs: ["build"] } });
  await finish(s, "build", RunState.SUCCEEDED);
  const agent = s.agent("b", { incarnation: "inc-1" });
  const given = await claim(db, agent);
  const again = await claim(db, agent);
  assert.equal(again?.id, given?.id);
  assert.deepEqual(again?.artifact_sources, [{ runId, job: "build", attempt: 1 }]);
  assert.deepEqual(again?.artifact_sources, given?.artifact_sources);
});
