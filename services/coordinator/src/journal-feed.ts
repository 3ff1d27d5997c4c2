import { create } from "@bufbuild/protobuf";
import { RunSummarySchema, WatchRunsResponseSchema, type RunsFilter, type WatchRunsResponse } from "@otto/gen/v1/run_service_pb";
import type { Pool } from "@otto/kit/db";
import type { Notifier } from "@otto/kit/notifier";
import { journalChannel } from "./engine/apply-changes.ts";
import { renewFollowing, startFollowing, stopFollowing, followerLeaseSeconds } from "./engine/journal-followers.ts";
import { compareCursors, cursorBefore, encodeCursor, type JournalCursor } from "./journal-cursor.ts";
import { journalRowToEvent } from "./run-store.ts";

// Every run's journal as one stream, exactly once and in one order. Runs'
// journals are numbered per run, and transactions commit in any order, so
// no order of appends is safe to read in while they are written: an entry
// of a transaction still open would be passed by a reader that goes on to
// a later one. Entries are therefore read only below the commit horizon
// (the oldest transaction still running: every transaction before it has
// ended, so the entries it wrote are all there and no more can come), in
// the order (writing transaction, run, sequence number), which the cursor
// names. Anything that holds a transaction with an id open (a write not
// yet committed) holds the stream back until it ends.

export interface FeedRow {
  cursor: JournalCursor;
  message: WatchRunsResponse;
}

export interface FeedBatch {
  rows: FeedRow[];
  // Every entry up to here has been read (delivered or filtered out).
  scanned: JournalCursor;
  // Entries committed but not yet below the horizon exist: the horizon must
  // be looked at again without waiting for news.
  held: boolean;
  horizon: bigint;
}

const readSql = `
SELECT h.xmin::text AS horizon,
  EXISTS (SELECT 1 FROM coordinator.journal WHERE xid >= h.xmin) AS held,
  e.*
FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin) h
LEFT JOIN LATERAL (
  SELECT j.run_id, j.seq, j.at, j.job, j.step, j.state, j.exit_code, j.message, j.xid AS xid_order, j.xid::text AS xid,
    r.name AS run_name, coalesce(r.project, '') AS project, coalesce(j.run_state, r.state) AS run_state
  FROM coordinator.journal j JOIN coordinator.runs r ON r.id = j.run_id
  WHERE (j.xid, j.run_id, j.seq) > ($1::text::xid8, $2::uuid, $3::bigint) AND j.xid < h.xmin
    AND ($4::text IS NULL OR r.name = $4) AND ($5::text IS NULL OR r.project = $5)
    AND ($6::smallint IS NULL OR coalesce(j.run_state, r.state) = $6)
  ORDER BY j.xid, j.run_id, j.seq
  LIMIT $7
) e ON true
ORDER BY e.xid_order, e.run_id, e.seq`;

export async function readFeed(pool: Pool, after: JournalCursor, filter: RunsFilter | undefined, limit = 500): Promise<FeedBatch> {
  const { rows } = await pool.query(readSql, [
    String(after.xid),
    after.runId,
    String(after.seq),
    filter?.pipeline || null,
    filter?.project || null,
    filter?.state || null,
    limit,
  ]);
  const horizon = BigInt(rows[0].horizon);
  const found = rows.filter((row) => row.run_id !== null);
  const feedRows = found.map((row) => {
    const cursor = { xid: BigInt(row.xid), runId: row.run_id as string, seq: BigInt(row.seq) };
    const message = create(WatchRunsResponseSchema, {
      event: journalRowToEvent(row),
      run: create(RunSummarySchema, { id: row.run_id, name: row.run_name, project: row.project, state: row.run_state }),
      cursor: encodeCursor(cursor),
    });
    return { cursor, message };
  });
  // Fewer than asked for: everything below the horizon has been read.
  let scanned = feedRows.at(-1)?.cursor ?? after;
  if (found.length < limit && compareCursors(cursorBefore(horizon), scanned) > 0) scanned = cursorBefore(horizon);
  return { rows: feedRows, scanned, held: rows[0].held, horizon };
}

// Where a stream without a cursor starts: now (the first entry not yet
// final), or before the oldest entry kept.
export async function startCursor(pool: Pool, fromBeginning: boolean): Promise<JournalCursor> {
  if (fromBeginning) return cursorBefore(0n);
  const { rows } = await pool.query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin");
  return cursorBefore(BigInt(rows[0].xmin));
}

// Without news, the horizon is looked at again this often anyway: often
// just after the stream registered (a transaction whose statement began
// before may append unannounced), seldom after (a lost registration).
const quietMs = { starting: 1_000, later: 30_000, startingForMs: 5_000 };
// While committed entries wait behind an open transaction: from this, doubling to 1 s.
const heldFirstMs = 20;
// How often a stream that delivers nothing (all filtered out) says how far it has read.
const progressEveryMs = 10_000;
const batchSize = 500;

// Every run's journal after `after`, live, until `signal` aborts. The first
// message carries only the cursor the stream starts from.
export async function* followFeed(pool: Pool, notifier: Notifier, after: JournalCursor, filter: RunsFilter | undefined, signal: AbortSignal): AsyncGenerator<WatchRunsResponse> {
  const follower = await startFollowing(pool);
  const registeredAt = Date.now();
  try {
    let renewAt = Date.now() + (followerLeaseSeconds * 1000) / 3;
    let position = after;
    let sent = after;
    let lastSentAt = Date.now();
    let heldMs = heldFirstMs;
    yield create(WatchRunsResponseSchema, { cursor: encodeCursor(after) });
    while (!signal.aborted) {
      if (Date.now() >= renewAt) {
        await renewFollowing(pool, follower);
        renewAt = Date.now() + (followerLeaseSeconds * 1000) / 3;
      }
      // Take the wake-up before reading, so an append between the read and
      // the wait is not missed; cut short while entries are held back.
      const cut = new AbortController();
      const quiet = Date.now() - registeredAt < quietMs.startingForMs ? quietMs.starting : quietMs.later;
      const woken = notifier.wait(journalChannel, () => true, quiet, AbortSignal.any([signal, cut.signal]));
      const batch = await readFeed(pool, position, filter, batchSize);
      for (const row of batch.rows) {
        yield row.message;
        sent = row.cursor;
        lastSentAt = Date.now();
      }
      position = batch.scanned;
      if (compareCursors(position, sent) > 0 && Date.now() - lastSentAt >= progressEveryMs) {
        yield create(WatchRunsResponseSchema, { cursor: encodeCursor(position) });
        sent = position;
        lastSentAt = Date.now();
      }
      if (batch.rows.length === batchSize) {
        cut.abort();
        continue;
      }
      let timer: NodeJS.Timeout | undefined;
      if (batch.held || batch.horizon < follower.announcedFrom) {
        timer = setTimeout(() => cut.abort(), heldMs);
        heldMs = Math.min(heldMs * 2, 1_000);
      } else {
        heldMs = heldFirstMs;
      }
      await woken;
      clearTimeout(timer);
    }
  } finally {
    await stopFollowing(pool, follower).catch(() => {});
  }
}
