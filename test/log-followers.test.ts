// A log's writes are announced (NOTIFY) while a ReadLog follows it, and
// only then: in this process, against a real Postgres, no Otto process.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { migrate } from "@otto/kit/db";
import { createLogger } from "@otto/kit/log";
import { Notifier } from "@otto/kit/notifier";
import { migrations } from "@otto/objects/migrations";
import { LogStore, logChannel, notice, type LogRef } from "@otto/objects/log-store";
import { LogReader } from "@otto/objects/log-reader";
import { storedChunk, type StoredChunk } from "@otto/objects/log-chunk";
import { ObjectStore } from "@otto/objects/object-store";
import { startEngineDb, type EngineDb } from "./helpers/engine-db.ts";

let db: EngineDb;
let notifier: Notifier;
let store: LogStore;
let reader: LogReader;
let listener: pg.Client;
const heard: string[] = [];
let onHeard: (() => void) | undefined;

before(async () => {
  db = await startEngineDb();
  await migrate(db.pool, "objects", migrations);
  notifier = new Notifier(db.url, [logChannel], createLogger("log-followers-test"));
  await notifier.start();
  // Logs this small stay in Postgres: object storage is never asked.
  const objects = new ObjectStore({ endpoint: "http://127.0.0.1:9", accessKey: "-", secretKey: "-", bucket: "otto", region: "us-east-1", idleTimeoutMs: 100 });
  store = new LogStore(db.pool, 16 * 1024);
  reader = new LogReader(db.pool, objects, notifier);
  listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  listener.on("notification", (n) => {
    heard.push(n.payload ?? "");
    onHeard?.();
  });
  await listener.query(`LISTEN ${logChannel}`);
});
after(async () => {
  await listener?.end();
  await notifier?.close();
  await db?.stop();
});

const aLog = (): LogRef => ({ runId: randomUUID(), job: "build", attempt: 1 });
const chunk = (text: string): Promise<StoredChunk> => storedChunk({ text, zstd: new Uint8Array(), segments: [] });

// Notifications reach the listener in commit order.
async function nextHeard(): Promise<string> {
  while (heard.length === 0) await new Promise<void>((resolve) => (onHeard = resolve));
  return heard.shift()!;
}

async function followers(log: LogRef): Promise<number | undefined> {
  const { rows } = await db.pool.query("SELECT followers FROM objects.log_followers WHERE run_id = $1 AND job = $2 AND attempt = $3", [
    log.runId,
    log.job,
    log.attempt,
  ]);
  return rows[0]?.followers;
}

// A ReadLog that follows `log`, once it is counted.
async function follow(log: LogRef) {
  const stop = new AbortController();
  const events = reader.chunks(log, { offset: 0 }, true, stop.signal);
  const texts: string[] = [];
  const reading = (async () => {
    for await (const event of events) if (event.kind === "chunk") texts.push(event.chunk.text.toString("utf8", event.from));
  })();
  while ((await followers(log)) === undefined) await new Promise((resolve) => setImmediate(resolve));
  return { texts, reading, stop };
}

test("appending to and closing a log nobody follows announces nothing; a followed log's writes are announced", async () => {
  const quiet = aLog();
  const followed = aLog();
  const following = await follow(followed);

  await store.append(quiet, 1, await chunk("one\n"));
  await store.append(followed, 1, await chunk("one\n"));
  assert.equal(await nextHeard(), notice(followed), "the unfollowed log's chunk was announced first");

  await store.close(quiet, { seq: 2, chunk: await chunk("two\n") });
  await store.close(followed, { seq: 2, chunk: await chunk("two\n") });
  assert.equal(await nextHeard(), notice(followed), "the unfollowed log's close was announced first");
  await following.reading;
  assert.equal(following.texts.join(""), "one\ntwo\n");
  assert.deepEqual(heard, []);
});

test("each follower counts, and the count is gone when the last one stops", async () => {
  const log = aLog();
  const first = await follow(log);
  const second = await follow(log);
  assert.equal(await followers(log), 2);
  first.stop.abort();
  await first.reading;
  assert.equal(await followers(log), 1);
  second.stop.abort();
  await second.reading;
  assert.equal(await followers(log), undefined);
});
