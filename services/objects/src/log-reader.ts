import type { Pool } from "@otto/kit/db";
import type { Notifier } from "@otto/kit/notifier";
import { afterLineEnds, lineEnds } from "@otto/kit/line-ends";
import { decompressLogText } from "@otto/kit/log-compression";
import { placed, type LoadedChunk } from "./log-render.ts";
import { decodeSegments } from "./log-segments.ts";
import { logChannel, notice, type LogRef } from "./log-store.ts";
import type { ObjectStore } from "./object-store.ts";

// Where a read starts: a byte offset into the text as printed, a line (from
// 0: how many line ends come before it), or so many lines before the end.
export type ReadStart = { offset: number } | { line: number } | { tail: number };

// What a read of a log's chunks meets, in order: each chunk (`from`: where
// in it the read starts, on line `fromLine` counted from 0), the moment it
// has read all there is so far (when following), or that the log was deleted.
export type ChunkEvent =
  | { kind: "chunk"; chunk: LoadedChunk; from: number; fromLine: number }
  | { kind: "caught-up" }
  | { kind: "deleted"; why: string };

const batchSize = 8;
// Archived chunks next to each other in the log's object are fetched in one
// range request of up to this much.
const maxRangeBytes = 8 * 1024 * 1024;

// Reads logs back from their chunks: those of a live log and small closed
// ones from Postgres, archived ones by range from the log's object in S3
// (their rows stay as the index: offsets, lines, segments). Memory stays at
// a few chunks however long the log.
export class LogReader {
  readonly #pool: Pool;
  readonly #objects: ObjectStore;
  readonly #notifier: Notifier;

  constructor(pool: Pool, objects: ObjectStore, notifier: Notifier) {
    this.#pool = pool;
    this.#objects = objects;
    this.#notifier = notifier;
  }

  // The latest attempt of a job that has a log, or 1 if none has yet.
  async latestAttempt(runId: string, job: string): Promise<number> {
    const { rows } = await this.#pool.query(
      "SELECT coalesce(max(attempt), 1) AS attempt FROM objects.logs WHERE run_id = $1 AND job = $2",
      [runId, job],
    );
    return rows[0].attempt;
  }

  // The log's chunks from `start` on; with `follow`, waits for more until
  // the log is closed.
  async *chunks(log: LogRef, start: ReadStart, follow: boolean, signal: AbortSignal): AsyncGenerator<ChunkEvent> {
    if (!follow) return yield* this.#chunks(log, start, false, signal);
    // Counted before the first read, so the writes after it are announced.
    // A write whose statement began just before the count may go
    // unannounced yet unread: the first wait is short. A count left behind
    // by a process that died only costs that log's announcements.
    const { runId, job, attempt } = log;
    await this.#pool.query(
      `INSERT INTO objects.log_followers (run_id, job, attempt, followers) VALUES ($1, $2, $3, 1)
       ON CONFLICT (run_id, job, attempt) DO UPDATE SET followers = log_followers.followers + 1`,
      [runId, job, attempt],
    );
    try {
      yield* this.#chunks(log, start, true, signal);
    } finally {
      await this.#pool
        .query(
          `WITH last AS (
             DELETE FROM objects.log_followers WHERE run_id = $1 AND job = $2 AND attempt = $3 AND followers <= 1 RETURNING 1
           )
           UPDATE objects.log_followers SET followers = followers - 1
           WHERE run_id = $1 AND job = $2 AND attempt = $3 AND NOT EXISTS (SELECT 1 FROM last)`,
          [runId, job, attempt],
        )
        .catch(() => {});
    }
  }

  async *#chunks(log: LogRef, start: ReadStart, follow: boolean, signal: AbortSignal): AsyncGenerator<ChunkEvent> {
    const { runId, job, attempt } = log;
    let lastSeq = 0;
    let pending: ReadStart | undefined = start;
    for (let waits = 0; !signal.aborted; waits++) {
      const woken = follow ? this.#notifier.wait(logChannel, (p) => p === notice(log), waits === 0 ? 1_000 : 5_000, signal) : undefined;
      const { rows } = await this.#pool.query(
        "SELECT state, lines, object_key, expired_at FROM objects.logs WHERE run_id = $1 AND job = $2 AND attempt = $3",
        [runId, job, attempt],
      );
      const row = rows[0];
      if (row?.state === "expired") {
        yield { kind: "deleted", why: `this log was deleted by retention${row.expired_at ? ` at ${new Date(row.expired_at).toISOString()}` : ""}` };
        return;
      }
      if (row) {
        // Where to start, once the log exists: a tail from its lines then.
        if (pending && "tail" in pending) pending = { line: Math.max(0, Number(row.lines) - pending.tail) };
        for (;;) {
          const batch = await this.#load(log, lastSeq, pending);
          if (batch.length === 0 && lastSeq === 0 && row.state === "closed" && row.object_key !== "" && (await this.#hasNoChunks(log))) {
            // Archived before logs had an index: one object, read whole.
            const text = await this.#objects.readFrom(row.object_key, 0);
            const chunk: LoadedChunk = { seq: 1, startOffset: 0, startLine: 0, startsLine: true, text, segments: [] };
            yield* startIn(chunk, pending ?? { offset: 0 });
            return;
          }
          for (const chunk of batch) {
            lastSeq = chunk.seq;
            if (pending) {
              yield* startIn(chunk, pending);
              pending = undefined;
            } else yield { kind: "chunk", chunk, from: 0, fromLine: chunk.startLine };
          }
          if (batch.length < batchSize) break;
        }
        // Closed when looked at: every chunk it has was there to load.
        if (row.state === "closed") return;
      }
      if (!follow) return;
      yield { kind: "caught-up" };
      await woken;
    }
  }

  // Whether the log has no chunk rows at all: archived before logs had an
  // index (a read that starts past the end of a log finds none either).
  async #hasNoChunks(log: LogRef): Promise<boolean> {
    const { rows } = await this.#pool.query(
      "SELECT NOT EXISTS (SELECT 1 FROM objects.log_chunks WHERE run_id = $1 AND job = $2 AND attempt = $3) AS none",
      [log.runId, log.job, log.attempt],
    );
    return rows[0].none;
  }

  // Up to a batch of the log's chunks after `afterSeq`, from the one where
  // `start` is on, with their texts.
  async #load(log: LogRef, afterSeq: number, start: ReadStart | undefined): Promise<LoadedChunk[]> {
    const offset = start && "offset" in start ? start.offset : -1;
    const line = start && "line" in start ? start.line : -1;
    const { rows } = await this.#pool.query(
      `SELECT c.seq, c.start_offset, c.start_line, c.bytes, c.steps, c.first_ms, c.segments, c.zstd, c.zstd_bytes, c.stored_offset, c.text,
         l.object_key, coalesce((SELECT p.ends_line FROM objects.log_chunks p
           WHERE p.run_id = c.run_id AND p.job = c.job AND p.attempt = c.attempt AND p.seq = c.seq - 1), true) AS starts_line
       FROM objects.log_chunks c JOIN objects.logs l USING (run_id, job, attempt)
       WHERE c.run_id = $1 AND c.job = $2 AND c.attempt = $3 AND c.seq > $4
         AND c.start_offset + c.bytes > $5 AND c.start_line + c.lines >= $6
       ORDER BY c.seq LIMIT ${batchSize}`,
      [log.runId, log.job, log.attempt, afterSeq, offset, line],
    );
    const archived = await this.#fetchArchived(rows.filter((r) => r.zstd === null && r.text === null));
    return rows.map((r): LoadedChunk => {
      const text = r.text !== null ? Buffer.from(r.text) : decompressLogText(r.zstd ?? archived.get(Number(r.seq))!);
      const segments = r.text !== null ? [] : placed(decodeSegments({ steps: r.steps, firstMs: Number(r.first_ms), index: r.segments }));
      return { seq: Number(r.seq), startOffset: Number(r.start_offset), startLine: Number(r.start_line), startsLine: r.starts_line, text, segments };
    });
  }

  // The compressed texts of archived chunks, by seq, read from the log's
  // object a range at a time.
  async #fetchArchived(rows: { seq: string; stored_offset: string; zstd_bytes: string; object_key: string }[]): Promise<Map<number, Buffer>> {
    const texts = new Map<number, Buffer>();
    for (let i = 0; i < rows.length; ) {
      const first = Number(rows[i]!.stored_offset);
      let end = i + 1;
      let last = first + Number(rows[i]!.zstd_bytes);
      while (end < rows.length && Number(rows[end]!.stored_offset) === last && last - first + Number(rows[end]!.zstd_bytes) <= maxRangeBytes) {
        last += Number(rows[end]!.zstd_bytes);
        end++;
      }
      const bytes = await this.#objects.readRange(rows[i]!.object_key, first, last - first);
      for (; i < end; i++) {
        const at = Number(rows[i]!.stored_offset) - first;
        texts.set(Number(rows[i]!.seq), bytes.subarray(at, at + Number(rows[i]!.zstd_bytes)));
      }
    }
    return texts;
  }
}

// The first chunk of a read, from where `start` is in it.
function* startIn(chunk: LoadedChunk, start: ReadStart): Generator<ChunkEvent> {
  const { text } = chunk;
  if ("offset" in start) {
    const from = Math.min(text.length, Math.max(0, start.offset - chunk.startOffset));
    return yield { kind: "chunk", chunk, from, fromLine: chunk.startLine + lineEnds(text, 0, from) };
  }
  // "tail" was made a line when the log's size was known.
  const line = "line" in start ? start.line : 0;
  const from = afterLineEnds(text, 0, line - chunk.startLine);
  yield { kind: "chunk", chunk, from, fromLine: Math.max(line, chunk.startLine) };
}
