import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { pipelineStatuses } from "@otto/coordinator/pipeline-statuses";
import { pipelineOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { RunState } from "./engine-rows.ts";

// ListPipelines (and so cctray.xml and badges): one entry per pipeline, per
// project for a project's runs, with its latest and last finished run.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

async function submitNamed(name: string, project?: { name: string; number: number }): Promise<string> {
  const { runId } = await submitRun(db.pool, pipelineOf({ build: { steps: ["make"], runsOn: [`nobody-${randomUUID()}`] } }, name), 1_000, randomUUID());
  if (project) {
    await db.pool.query("UPDATE coordinator.runs SET project = $2, source = jsonb_build_object('project', $2::text, 'number', $3::int) WHERE id = $1", [
      runId,
      project.name,
      project.number,
    ]);
  }
  return runId;
}

test("a pipeline's entry shows its latest run, its last finished one, and whether one runs", async () => {
  const name = `lib-${randomUUID().slice(0, 8)}`;
  const project = `app-${randomUUID().slice(0, 8)}`;
  const first = await submitNamed(name);
  await db.tx((client) => cancelRun(client, first));
  const second = await submitNamed(name);
  await db.pool.query("UPDATE coordinator.runs SET state = $2 WHERE id = $1", [second, RunState.RUNNING]);
  // A project's runs are the project's, whatever their pipeline is named.
  const ofProject = await submitNamed(name, { name: project, number: 4 });

  const [entry] = await pipelineStatuses(db.pool, name);
  assert.equal(entry.name, name);
  assert.equal(entry.project, "");
  assert.equal(entry.building, true);
  assert.equal(entry.latest?.id, second);
  assert.equal(entry.lastFinished?.id, first);
  assert.equal(entry.lastFinished?.state, RunState.CANCELED);
  assert.ok(entry.lastFinished?.finishedAt);

  const [projectEntry] = await pipelineStatuses(db.pool, project);
  assert.deepEqual(
    [projectEntry.name, projectEntry.project, projectEntry.building, projectEntry.latest?.id, projectEntry.latest?.number, projectEntry.lastFinished],
    [project, project, false, ofProject, 4n, undefined],
  );
  const all = await pipelineStatuses(db.pool, "");
  assert.ok(all.some((p) => p.name === name) && all.some((p) => p.name === project));
  assert.deepEqual(await pipelineStatuses(db.pool, `none-${randomUUID()}`), []);
});
