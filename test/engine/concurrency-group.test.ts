import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { ConcurrencySchema } from "@otto/gen/v1/pipeline_pb";
import { advanceRun } from "@otto/coordinator/engine/advance-run";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { groupsChannel, runsWhoseTurnCame } from "@otto/coordinator/engine/concurrency-group";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { shardCount } from "@otto/coordinator/shards";
import { pipelineOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobStates, journalLines, listen, putJobIn, RunState, runRow, tasksOf } from "./engine-rows.ts";

// Concurrency groups: runs of a group beyond its limit wait in line, QUEUED
// without tasks, and are admitted first in first out as admitted runs end.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const allShards = Array.from({ length: shardCount }, (_, shard) => shard);

async function submitIn(group: string, options: { limit?: number; cancelInProgress?: boolean } = {}): Promise<string> {
  const pipeline = pipelineOf({ build: {}, test: { needs: ["build"] } });
  pipeline.concurrency = create(ConcurrencySchema, { group, limit: options.limit ?? 1, cancelInProgress: options.cancelInProgress ?? false });
  return (await submitRun(db.pool, pipeline, 1_000, randomUUID())).runId;
}

// What the shard owners' sweep does: advance each waiting run whose turn came.
async function moveLines(group: string): Promise<string[]> {
  const due = (await runsWhoseTurnCame(db.pool, allShards)).map((run) => run.id);
  for (const id of due) await db.tx((client) => advanceRun(client, id));
  const { rows } = await db.pool.query("SELECT id FROM coordinator.runs WHERE id = ANY($1) AND concurrency_group = $2", [due, group]);
  return rows.map((row) => row.id);
}

async function finish(runId: string): Promise<void> {
  await putJobIn(db, runId, "build", RunState.SUCCEEDED);
  await db.tx((client) => advanceRun(client, runId));
  await putJobIn(db, runId, "test", RunState.SUCCEEDED);
  await db.tx((client) => advanceRun(client, runId));
}

test("runs past the limit wait in line without tasks, and are admitted in the order they came as runs end", async () => {
  const group = `g-${randomUUID()}`;
  const [first, second, third] = [await submitIn(group), await submitIn(group), await submitIn(group)];
  assert.deepEqual(await tasksOf(db, first), { build: "pending" });
  assert.deepEqual(await tasksOf(db, second), {});
  assert.deepEqual(await tasksOf(db, third), {});
  assert.equal((await journalLines(db, first))[1], `run QUEUED: runs in concurrency group "${group}" (1 of at most 1)`);
  assert.equal((await journalLines(db, second))[1], `run QUEUED: waits in concurrency group "${group}" (at most 1 at once): place 1 in line`);
  assert.equal((await journalLines(db, third))[1], `run QUEUED: waits in concurrency group "${group}" (at most 1 at once): place 2 in line`);
  assert.deepEqual(await moveLines(group), [], "nobody's turn while the first runs");

  const listener = await listen(db, groupsChannel);
  try {
    await finish(first);
    assert.equal((await runRow(db, first)).state, RunState.SUCCEEDED);
    await listener.atLeast(1);
  } finally {
    await listener.stop();
  }
  assert.deepEqual(await moveLines(group), [second]);
  assert.deepEqual(await tasksOf(db, second), { build: "pending" });
  assert.deepEqual(await tasksOf(db, third), {});
  assert.equal((await journalLines(db, second)).at(-1), `run QUEUED: admitted by concurrency group "${group}"`);

  // An advance of a run whose turn has not come changes nothing.
  await db.tx((client) => advanceRun(client, third));
  assert.deepEqual(await tasksOf(db, third), {});

  await finish(second);
  assert.deepEqual(await moveLines(group), [third]);
  assert.deepEqual(await tasksOf(db, third), { build: "pending" });
});

test("a limit of two admits two at once; a run canceled in line leaves it without having run", async () => {
  const group = `g-${randomUUID()}`;
  const runs = [await submitIn(group, { limit: 2 }), await submitIn(group, { limit: 2 }), await submitIn(group, { limit: 2 }), await submitIn(group, { limit: 2 })];
  assert.deepEqual(
    await Promise.all(runs.map(async (id) => Object.keys(await tasksOf(db, id)).length)),
    [1, 1, 0, 0],
  );
  await db.tx((client) => cancelRun(client, runs[2]));
  assert.equal((await runRow(db, runs[2])).state, RunState.CANCELED);
  assert.deepEqual(await jobStates(db, runs[2]), { build: "CANCELED", test: "CANCELED" });
  assert.deepEqual(await tasksOf(db, runs[2]), {});

  await finish(runs[0]);
  assert.deepEqual(await moveLines(group), [runs[3]], "the canceled run gave its place to the next");
  assert.deepEqual(await tasksOf(db, runs[3]), { build: "pending" });
});

test("cancel-in-progress cancels the group's running runs; the new run waits for them to end, and runs waiting in line keep their place", async () => {
  const group = `g-${randomUUID()}`;
  const running = await submitIn(group);
  await putJobIn(db, running, "build", RunState.RUNNING);
  const waiting = await submitIn(group);
  const newest = await submitIn(group, { cancelInProgress: true });
  const row = await runRow(db, running);
  assert.equal(row.cancel_requested, true);
  assert.ok((await journalLines(db, running)).includes(`run RUNNING: canceled by run ${newest} of concurrency group "${group}" (cancel-in-progress)`));
  assert.equal((await runRow(db, waiting)).cancel_requested, false, "a run waiting in line is not canceled");
  assert.equal((await journalLines(db, newest))[1], `run QUEUED: waits in concurrency group "${group}" (at most 1 at once): place 2 in line`);

  // The canceled run's job stops; the line moves on in order.
  await putJobIn(db, running, "build", RunState.CANCELED);
  await db.tx((client) => advanceRun(client, running));
  assert.equal((await runRow(db, running)).state, RunState.CANCELED);
  assert.deepEqual(await moveLines(group), [waiting]);
  assert.deepEqual(await tasksOf(db, newest), {});
});

test("a run canceled while it waits in line starts nothing, not even a job whose condition calls always()", async () => {
  const group = `g-${randomUUID()}`;
  await submitIn(group);
  const pipeline = pipelineOf({ build: {}, cleanup: { if: "always()" } });
  pipeline.concurrency = create(ConcurrencySchema, { group, limit: 1 });
  const waiting = (await submitRun(db.pool, pipeline, 1_000, randomUUID())).runId;
  await db.tx((client) => cancelRun(client, waiting));
  assert.deepEqual(await jobStates(db, waiting), { build: "CANCELED", cleanup: "CANCELED" });
  assert.deepEqual(await tasksOf(db, waiting), {});
  assert.equal((await runRow(db, waiting)).state, RunState.CANCELED);
});
