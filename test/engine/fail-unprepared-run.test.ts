import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { failUnpreparedRun } from "@otto/coordinator/engine/fail-unprepared-run";
import { attachPipeline } from "@otto/coordinator/engine/attach-pipeline";
import { startProjectRun } from "@otto/coordinator/engine/start-project-run";
import { pipelineOf, project, run, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { journalLines, RunState, runRow } from "./engine-rows.ts";

// failUnpreparedRun: a project's run whose pipeline file is missing or
// invalid at its commit ends FAILED from QUEUED, its message saying why; a
// run that got its jobs meanwhile is left as it is.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const push = { event: "push", ref: "refs/heads/main", branch: "main", sha: "d".repeat(40) };

async function waitingRun(): Promise<string> {
  const name = await project(db);
  return (await db.tx((client) => startProjectRun(client, db.boss, { project: name, source: push, requestId: "", maxActiveRuns: 100 }))).runId;
}

test("the run ends FAILED with the problems as its message, in its journal too", async () => {
  const runId = await waitingRun();
  const message = ".otto.yml at dddddddddddd is not a valid pipeline:\n.otto.yml:3:5: unknown key 'stpes'";
  assert.equal(await db.tx((client) => failUnpreparedRun(client, runId, message)), "failed");
  const stored = await run(db, runId);
  assert.equal(stored.state, RunState.FAILED);
  assert.equal(stored.message, message);
  assert.ok(stored.finishedAt, "a finished time");
  assert.equal((await journalLines(db, runId)).at(-1), `run FAILED: ${message}`);
});

test("a run that got its jobs, or ended, is left as it is", async () => {
  const attached = await waitingRun();
  await db.tx((client) => attachPipeline(client, attached, pipelineOf({ build: {} }), "read"));
  assert.equal(await db.tx((client) => failUnpreparedRun(client, attached, "late")), "not waiting");
  assert.equal((await runRow(db, attached)).state, RunState.QUEUED);
  const failed = await waitingRun();
  await db.tx((client) => failUnpreparedRun(client, failed, "first"));
  assert.equal(await db.tx((client) => failUnpreparedRun(client, failed, "second")), "not waiting");
  assert.equal((await run(db, failed)).message, "first");
});
