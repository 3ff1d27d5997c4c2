import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { attachPipeline } from "@otto/coordinator/engine/attach-pipeline";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { failUnpreparedRun } from "@otto/coordinator/engine/fail-unprepared-run";
import { startProjectRun } from "@otto/coordinator/engine/start-project-run";
import { agent, claim, pipelineOf, project, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { RunState } from "./engine-rows.ts";

// The commit statuses a project's run owes its forge are written in the
// transaction of the change they report: pending when the run gets its jobs,
// then success, failure or error when it ends (by the one write path); none
// for a project without a forge and a token.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const sha = "e".repeat(40);

async function projectRun(withForge = true): Promise<string> {
  const name = await project(db);
  if (withForge) await db.pool.query("UPDATE coordinator.projects SET forge_kind = 'github', forge_api_url = 'https://forge.invalid', forge_token_secret = 'T' WHERE name = $1", [name]);
  const source = { event: "push", ref: "refs/heads/main", branch: "main", sha };
  return (await db.tx((client) => startProjectRun(client, db.boss, { project: name, source, requestId: "", maxActiveRuns: 100 }))).runId;
}

async function owed(runId: string): Promise<string[]> {
  const { rows } = await db.pool.query("SELECT context, state, description, sha, queued_at, sent_at FROM coordinator.commit_statuses WHERE run_id = $1 ORDER BY id", [runId]);
  for (const row of rows) assert.deepEqual([row.sha, row.queued_at, row.sent_at], [sha, null, null]);
  return rows.map((r) => `${r.context} ${r.state}: ${r.description}`);
}

test("pending when the run gets its jobs, success when it ends so", async () => {
  const runId = await projectRun();
  assert.deepEqual(await owed(runId), []);
  await db.tx((client) => attachPipeline(client, runId, pipelineOf({ build: { runsOn: [`l-${runId}`] } }, "app ci"), "read"));
  assert.deepEqual(await owed(runId), ["otto/app ci pending: 1 jobs queued"]);
  const task = await claim(db, agent("a1", { labels: [`l-${runId}`] }));
  assert.ok(task);
  await db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: task.attempt }, { state: RunState.SUCCEEDED, message: "", steps: [] }));
  assert.deepEqual(await owed(runId), ["otto/app ci pending: 1 jobs queued", "otto/app ci success: all jobs succeeded"]);
});

test("failure when its pipeline cannot be read, under the project's name; error when canceled", async () => {
  const failed = await projectRun();
  await db.tx((client) => failUnpreparedRun(client, failed, ".otto.yml:2:7: expected a mapping"));
  assert.equal((await owed(failed)).length, 1);
  assert.match((await owed(failed))[0], /^otto\/p-\w+ failure: \.otto\.yml:2:7: expected a mapping$/);
  const canceled = await projectRun();
  await db.tx((client) => attachPipeline(client, canceled, pipelineOf({ build: { runsOn: ["nobody-has-this"] } }, "app ci"), "read"));
  await db.tx((client) => cancelRun(client, canceled));
  assert.deepEqual(await owed(canceled), ["otto/app ci pending: 1 jobs queued", "otto/app ci error: run canceled"]);
});

test("nothing is owed by a project without a forge and a token", async () => {
  const runId = await projectRun(false);
  await db.tx((client) => attachPipeline(client, runId, pipelineOf({ build: { runsOn: ["nobody-has-this"] } }), "read"));
  await db.tx((client) => cancelRun(client, runId));
  assert.deepEqual(await owed(runId), []);
});
