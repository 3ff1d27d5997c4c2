import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { listRuns } from "@otto/coordinator/list-runs";
import { runStateName } from "@otto/contracts/run-state";
import { pipelineOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { RunState } from "./engine-rows.ts";

// ListRuns: newest first, a page at a time, only the runs of a pipeline, a
// project or a state when asked; a page token keeps its place under the
// same filters, also when runs change state between two pages.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

interface Made {
  id: string;
  pipeline: string;
  project: string | null;
  state: RunState;
  createdAt: Date;
}

// A run of `pipeline` (never claimed: its job runs on a label no agent
// has), then put in `state` and given its creation time.
async function made(pipeline: string, state: RunState, createdAt: Date, project: string | null = null): Promise<Made> {
  const { runId } = await submitRun(db.pool, pipelineOf({ build: { steps: ["make"], runsOn: [`nobody-${randomUUID()}`] } }, pipeline), 1_000, randomUUID());
  if (state === RunState.CANCELED) await db.tx((client) => cancelRun(client, runId));
  else if (state !== RunState.QUEUED) await db.pool.query("UPDATE coordinator.runs SET state = $2 WHERE id = $1", [runId, state]);
  await db.pool.query("UPDATE coordinator.runs SET created_at = $2, project = $3 WHERE id = $1", [runId, createdAt, project]);
  return { id: runId, pipeline, project, state, createdAt };
}

const newestFirst = (a: Made, b: Made) => b.createdAt.getTime() - a.createdAt.getTime() || (a.id < b.id ? 1 : -1);

// Every page under the filters, each at most `pageSize` runs.
async function pages(filter: { pipeline?: string; state?: RunState; project?: string }, pageSize: number): Promise<string[][]> {
  const found: string[][] = [];
  let pageToken = "";
  do {
    const page = await listRuns(db.pool, { pageSize, pageToken, pipeline: filter.pipeline ?? "", state: filter.state ?? RunState.UNSPECIFIED, project: filter.project ?? "" });
    assert.ok(page.runs.length <= pageSize, "a page holds at most page_size runs");
    found.push(page.runs.map((r) => r.id));
    pageToken = page.nextPageToken;
    assert.ok(found.length < 50, "the pages end");
  } while (pageToken !== "");
  return found;
}

test("filters by pipeline and by state, together and with a project, page after page, newest first", async () => {
  const lib = `lib-${randomUUID().slice(0, 8)}`;
  const app = `app-${randomUUID().slice(0, 8)}`;
  const base = Date.parse("2026-01-01T00:00:00Z");
  const states = [RunState.QUEUED, RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED];
  const runs: Made[] = [];
  for (let i = 0; i < 15; i++) {
    // Runs 0 and 1, 5 and 6, 10 and 11 share their creation time: the id orders them.
    const at = new Date(base + (i % 5 === 1 ? i - 1 : i) * 60_000);
    runs.push(await made(i % 3 === 2 ? app : lib, states[i % states.length], at, i % 4 === 0 ? `proj-${lib}` : null));
  }
  assert.ok(new Set(runs.map((r) => r.createdAt.getTime())).size < runs.length, "some runs were made at the same time");
  const stored = await listRuns(db.pool, { pageSize: 100, pageToken: "", pipeline: "", state: RunState.UNSPECIFIED, project: "" });
  assert.deepEqual(
    stored.runs.map((r) => [r.id, r.name, runStateName(r.state)]),
    [...runs].sort(newestFirst).map((r) => [r.id, r.pipeline, runStateName(r.state)]),
    "the runs are in the states they were put in",
  );

  const filters: Array<{ pipeline?: string; state?: RunState; project?: string }> = [
    ...[lib, app].flatMap((pipeline) => [{ pipeline }, ...states.map((state) => ({ pipeline, state }))]),
    ...states.map((state) => ({ state })),
    { project: `proj-${lib}`, state: RunState.QUEUED },
    { project: `proj-${lib}`, pipeline: lib },
    { pipeline: `none-${lib}` },
  ];
  for (const filter of filters) {
    const expected = runs
      .filter((r) => filter.pipeline === undefined || r.pipeline === filter.pipeline)
      .filter((r) => filter.state === undefined || r.state === filter.state)
      .filter((r) => filter.project === undefined || r.project === filter.project)
      .sort(newestFirst)
      .map((r) => r.id);
    const label = JSON.stringify({ ...filter, state: filter.state === undefined ? undefined : runStateName(filter.state) });
    for (const pageSize of [1, 2, 100]) {
      const found = await pages(filter, pageSize);
      assert.deepEqual(found.flat(), expected, `${label}, ${pageSize} a page`);
      if (expected.length > pageSize) assert.ok(found.length > 1, `${label}: more than one page`);
    }
  }
  assert.ok(runs.filter((r) => r.pipeline === lib && r.state === RunState.FAILED).length >= 2, "a filter with runs on several pages");
});

test("a page token keeps its place when its run and others change state between pages", async () => {
  const name = `moving-${randomUUID().slice(0, 8)}`;
  const base = Date.parse("2026-02-01T00:00:00Z");
  const failed: Made[] = [];
  for (let i = 0; i < 5; i++) failed.push(await made(name, RunState.FAILED, new Date(base + i * 1_000)));
  const other = await made(`${name}-other`, RunState.FAILED, new Date(base + 2_500));
  const query = { pipeline: name, state: RunState.FAILED, project: "" };

  const first = await listRuns(db.pool, { ...query, pageSize: 2, pageToken: "" });
  assert.deepEqual(
    first.runs.map((r) => r.id),
    [failed[4].id, failed[3].id],
  );
  assert.equal(first.nextPageToken, failed[3].id);
  // The token's own run is no longer FAILED, and a run after it leaves too.
  await db.pool.query("UPDATE coordinator.runs SET state = $2 WHERE id = ANY($1)", [[failed[3].id, failed[1].id], RunState.SUCCEEDED]);
  const second = await listRuns(db.pool, { ...query, pageSize: 2, pageToken: first.nextPageToken });
  assert.deepEqual(
    second.runs.map((r) => r.id),
    [failed[2].id, failed[0].id],
    "the runs after the token's place that are FAILED now, and no other pipeline's",
  );
  assert.equal(second.nextPageToken, "");
  assert.ok(!second.runs.some((r) => r.id === other.id));
});
