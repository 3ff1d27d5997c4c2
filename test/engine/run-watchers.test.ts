import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { journalChannel } from "@otto/coordinator/engine/apply-changes";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { startWatching, stopWatching } from "@otto/coordinator/engine/run-watchers";
import { startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { listen, scope } from "./engine-rows.ts";

// startWatching / stopWatching: a run's journal entries are announced on
// the journal channel while a WatchRun follows it, and only then.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

async function watchersOf(runId: string): Promise<number> {
  const { rows } = await db.pool.query("SELECT watchers FROM coordinator.runs WHERE id = $1", [runId]);
  return rows[0].watchers;
}

// Notifications reach a listener in commit order: the first one heard after
// changes to an unwatched and then a watched run names the run announced.
async function firstAnnounced(changes: () => Promise<void>): Promise<string[]> {
  const listener = await listen(db, journalChannel);
  try {
    await changes();
    await listener.atLeast(1);
    return listener.received;
  } finally {
    await listener.stop();
  }
}

test("a change to a run nobody watches is not announced; one to a watched run is", async () => {
  const s = scope(db);
  const quiet = await s.submit({ build: { steps: ["make"] } });
  const watched = await s.submit({ build: { steps: ["make"] } });
  await startWatching(db.pool, watched);
  assert.equal(await watchersOf(watched), 1);

  const heard = await firstAnnounced(async () => {
    await db.tx((client) => cancelRun(client, quiet));
    await db.tx((client) => cancelRun(client, watched));
  });
  // Had the first run's cancel been announced, its notice would come first.
  assert.equal(heard[0], watched);
});

test("each watcher counts; the last one to stop ends the announcements, and stopping never goes below none", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: { steps: ["make"] }, test: { steps: ["make check"], needs: ["build"] } });
  const other = await s.submit({ build: { steps: ["make"] } });
  await startWatching(db.pool, runId);
  await startWatching(db.pool, runId);
  await stopWatching(db.pool, runId);
  assert.equal(await watchersOf(runId), 1);
  await stopWatching(db.pool, runId);
  await stopWatching(db.pool, runId);
  assert.equal(await watchersOf(runId), 0);

  await startWatching(db.pool, other);
  const heard = await firstAnnounced(async () => {
    await db.tx((client) => cancelRun(client, runId));
    await db.tx((client) => cancelRun(client, other));
  });
  assert.equal(heard[0], other);
});
