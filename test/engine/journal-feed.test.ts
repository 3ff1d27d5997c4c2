import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { RunsFilterSchema, type WatchRunsResponse } from "@otto/gen/v1/run_service_pb";
import { journalChannel } from "@otto/coordinator/engine/apply-changes";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { followFeed, readFeed, startCursor } from "@otto/coordinator/journal-feed";
import { compareCursors, decodeCursor, type JournalCursor } from "@otto/coordinator/journal-cursor";
import pg from "pg";
import { Notifier } from "@otto/kit/notifier";
import type { PoolClient } from "@otto/kit/db";
import { createLogger } from "@otto/kit/log";
import { pipelineOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { RunState, refused } from "./engine-rows.ts";

// Every run's journal as one stream (WatchRuns): entries are read in the
// order of the transactions that wrote them, and only once every
// transaction that began before them has ended, so that no entry is passed
// over while it is being written, or read twice.

let db: EngineDb;
let notifier: Notifier;
before(async () => {
  db = await startEngineDb();
  notifier = new Notifier(db.url, [journalChannel], createLogger("journal-feed-test"));
  await notifier.start();
});
after(async () => {
  await notifier?.close();
  await db?.stop();
});

function submitNamed(name: string, project?: string): Promise<string> {
  return submitRun(db.pool, pipelineOf({ build: { steps: ["make"], runsOn: [`nobody-${randomUUID()}`] } }, name), 1_000, randomUUID()).then(async ({ runId }) => {
    if (project) await db.pool.query("UPDATE coordinator.runs SET project = $2 WHERE id = $1", [runId, project]);
    return runId;
  });
}

// Everything readable after `from`, batch by batch, with the place reached.
async function readAll(from: JournalCursor, filter?: Parameters<typeof readFeed>[2]) {
  const messages: WatchRunsResponse[] = [];
  let position = from;
  for (;;) {
    const batch = await readFeed(db.pool, position, filter, 3);
    messages.push(...batch.rows.map((row) => row.message));
    position = batch.scanned;
    if (batch.rows.length < 3) return { messages, position, held: batch.held };
  }
}

const key = (m: WatchRunsResponse) => `${m.event!.runId}#${m.event!.seq}`;

test("a transaction that commits after a later one is delivered first, and nothing is passed over or sent twice", async () => {
  const first = await submitNamed("feed-order");
  const second = await submitNamed("feed-order");
  const start = await startCursor(db.pool, false);

  // First takes its transaction id and writes, and stays open; second writes
  // later and commits first.
  const open = await db.pool.connect();
  try {
    await open.query("BEGIN");
    await cancelRun(open, first);
    await db.tx((client) => cancelRun(client, second));

    // Second's entries are committed, but behind an open transaction: a
    // reader that took them now would go past first's, still to come.
    const meanwhile = await readAll(start);
    assert.deepEqual(meanwhile.messages.map(key).filter((k) => k.startsWith(first) || k.startsWith(second)), []);
    assert.equal(meanwhile.held, true, "entries wait behind the open transaction");

    await open.query("COMMIT");
  } finally {
    open.release();
  }
  const { messages } = await readAll(start);
  const ours = messages.filter((m) => m.event!.runId === first || m.event!.runId === second);
  // Both runs' cancellations, first's (the older transaction) entirely before second's.
  const runs = ours.map((m) => m.event!.runId);
  assert.ok(runs.length >= 4, `every entry of both cancellations, got ${runs.length}`);
  assert.equal(runs.lastIndexOf(first) < runs.indexOf(second), true, `first's entries come before second's: ${runs.join(" ")}`);
  assertExactlyOnceInOrder(messages);
  const ended = ours.filter((m) => m.event!.job === "" && m.event!.state === RunState.CANCELED);
  assert.deepEqual(ended.map((m) => m.event!.runId), [first, second]);
  assert.deepEqual(ended.map((m) => [m.run!.name, m.run!.state]), [["feed-order", RunState.CANCELED], ["feed-order", RunState.CANCELED]]);
});

function assertExactlyOnceInOrder(messages: WatchRunsResponse[]) {
  const keys = messages.map(key);
  assert.equal(new Set(keys).size, keys.length, "no entry twice");
  const cursors = messages.map((m) => decodeCursor(m.cursor));
  for (let i = 1; i < cursors.length; i++) assert.ok(compareCursors(cursors[i - 1], cursors[i]) < 0, "cursors only grow");
  // Each run's entries in their own order.
  const lastSeq = new Map<string, bigint>();
  for (const m of messages) {
    const seq = m.event!.seq;
    assert.ok(seq > (lastSeq.get(m.event!.runId) ?? 0n), `run ${m.event!.runId}'s entries in order`);
    lastSeq.set(m.event!.runId, seq);
  }
}

test("a live stream gets every entry of many transactions that commit out of order, once each, and resumes from any cursor", async () => {
  const runs = await Promise.all(Array.from({ length: 12 }, () => submitNamed("feed-live")));
  const stop = new AbortController();
  const received: WatchRunsResponse[] = [];
  const expected = async () => {
    // The cancellations' entries: the submits' came before the stream began.
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM coordinator.journal WHERE run_id = ANY($1) AND seq > 1", [runs]);
    return rows[0].n as number;
  };
  const start = await startCursor(db.pool, false);
  const stream = followFeed(db.pool, notifier, start, create(RunsFilterSchema, { pipeline: "feed-live" }), stop.signal);
  const first = await stream.next();
  assert.equal(first.value!.event, undefined, "the first message only says where the stream starts");
  assert.equal(first.value!.cursor !== "", true);

  // Transactions that take their ids in one order and commit in the
  // reverse one: every later one commits while the earlier ones are open.
  // Connections of their own: more than the pool holds.
  const clients = await Promise.all(
    runs.map(async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      return client;
    }),
  );
  let total = Infinity;
  const reading = (async () => {
    for await (const message of { [Symbol.asyncIterator]: () => stream }) {
      if (message.event) received.push(message);
      if (received.length >= total) return;
    }
  })();
  try {
    for (const [i, client] of clients.entries()) {
      await client.query("BEGIN");
      await cancelRun(client as unknown as PoolClient, runs[i]);
    }
    for (const client of clients.toReversed()) await client.query("COMMIT");
  } finally {
    await Promise.all(clients.map((client) => client.end()));
  }
  total = await expected();
  if (received.length < total) await withDeadline(reading, 10_000, () => `every entry arrives; got ${received.length} of ${total}`);
  stop.abort();
  await reading;
  assert.equal(received.length, await expected());
  assert.deepEqual(new Set(received.map((m) => m.event!.runId)), new Set(runs));
  assertExactlyOnceInOrder(received);

  // From the middle: exactly the rest.
  const middle = decodeCursor(received[9].cursor);
  const { messages: rest } = await readAll(middle, create(RunsFilterSchema, { pipeline: "feed-live" }));
  assert.deepEqual(rest.map(key), received.slice(10).map(key));
});

test("filters by pipeline, project and the run's state as of the entry", async () => {
  const tag = randomUUID().slice(0, 8);
  const start = await startCursor(db.pool, false);
  const plain = await submitNamed(`plain-${tag}`);
  const ofProject = await submitNamed(`app-${tag}`, `proj-${tag}`);
  await db.tx((client) => cancelRun(client, plain));
  await db.tx((client) => cancelRun(client, ofProject));

  const byName = await readAll(start, create(RunsFilterSchema, { pipeline: `plain-${tag}` }));
  assert.ok(byName.messages.length > 0);
  assert.ok(byName.messages.every((m) => m.event!.runId === plain && m.run!.name === `plain-${tag}` && m.run!.project === ""));

  const byProject = await readAll(start, create(RunsFilterSchema, { project: `proj-${tag}` }));
  assert.ok(byProject.messages.length > 0);
  assert.ok(byProject.messages.every((m) => m.event!.runId === ofProject && m.run!.project === `proj-${tag}`));

  // The run was QUEUED until its cancellation's last entry made it CANCELED.
  const canceled = await readAll(start, create(RunsFilterSchema, { pipeline: `plain-${tag}`, state: RunState.CANCELED }));
  assert.deepEqual(canceled.messages.map((m) => [m.event!.job, m.event!.state]), [["", RunState.CANCELED]]);
  const queued = await readAll(start, create(RunsFilterSchema, { pipeline: `plain-${tag}`, state: RunState.QUEUED }));
  assert.deepEqual(queued.messages.map((m) => m.run!.state), byName.messages.slice(0, -1).map(() => RunState.QUEUED));
  assert.ok(queued.messages.length > 0);
});

test("from the beginning reads entries written before the stream; from now does not", async () => {
  const early = await submitNamed(`early-${randomUUID().slice(0, 8)}`);
  await db.tx((client) => cancelRun(client, early));
  const now = await readAll(await startCursor(db.pool, false));
  assert.equal(now.messages.some((m) => m.event!.runId === early), false);
  const all = await readAll(await startCursor(db.pool, true));
  assert.equal(all.messages.some((m) => m.event!.runId === early), true);
  assertExactlyOnceInOrder(all.messages);
});

test("a cursor that WatchRuns did not give is invalid_argument", async () => {
  await refused(Promise.resolve().then(() => decodeCursor("not-a-cursor")), Code.InvalidArgument, /after_cursor/);
});

async function withDeadline<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(what())), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
