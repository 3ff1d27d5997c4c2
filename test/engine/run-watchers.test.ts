import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { journalChannel } from "../../services/coordinator/src/engine/apply-changes.ts";
import { cancelRun } from "../../services/coordinator/src/engine/cancel-run.ts";
import { startWatching, stopWatching } from "../../services/coordinator/src/engine/run-watchers.ts";
import { startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { scope } from "./engine-rows.ts";

// startWatching / stopWatching: a run's journal entries are announced on
// the journal channel while a WatchRun follows it, and only then.

let db: EngineDb;
let listener: pg.Client;
const heard: string[] = [];
let onHeard: (() => void) | undefined;
before(async () => {
  db = await startEngineDb();
  listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  listener.on("notification", (n) => {
    heard.push(n.payload ?? "");
    onHeard?.();
  });
  await listener.query(`LISTEN ${journalChannel}`);
});
after(async () => {
  await listener?.end();
  await db?.stop();
});

async function watchersOf(runId: string): Promise<number> {
  const { rows } = await db.pool.query("SELECT watchers FROM coordinator.runs WHERE id = $1", [runId]);
  return rows[0].watchers;
}

// The next announcement: notifications reach the listener in commit order.
async function nextHeard(): Promise<string> {
  while (heard.length === 0) await new Promise<void>((resolve) => (onHeard = resolve));
  return heard.shift()!;
}

test("a change to a run nobody watches is not announced; one to a watched run is", async () => {
  const s = scope(db);
  const quiet = await s.submit({ build: { steps: ["make"] } });
  const watched = await s.submit({ build: { steps: ["make"] } });
  await startWatching(db.pool, watched);
  assert.equal(await watchersOf(watched), 1);

  await db.tx((client) => cancelRun(client, quiet));
  await db.tx((client) => cancelRun(client, watched));

  // Had the first run's cancel been announced, its notice would come first.
  assert.equal(await nextHeard(), watched);
  assert.deepEqual(heard, []);
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
  await db.tx((client) => cancelRun(client, runId));
  await db.tx((client) => cancelRun(client, other));
  assert.equal(await nextHeard(), other);
  assert.deepEqual(heard, []);
});
