import { Code, ConnectError } from "@connectrpc/connect";
import { inTransaction, type Pool, type PoolClient } from "@otto/kit/db";
import { traceParentOf } from "@otto/kit/telemetry";
import { attemptIsLive, requireLiveAttempt } from "@otto/kit/live-attempts";
import { jobKey } from "@otto/kit/job-key";
import type { StoredChunk } from "./log-chunk.ts";

export const logChannel = "otto_log";
// Wakes the archivers when a closed log is due to move to object storage.
export const archiveChannel = "otto_log_archive";

// One log per attempt of a job.
export interface LogRef {
  runId: string;
  job: string;
  attempt: number;
}

export function logKey({ runId, job, attempt }: LogRef): string {
  return `${logsPrefixOf(runId)}${jobKey(job)}/attempt-${attempt}.log.zst`;
}

// Where every log object of a run is.
export function logsPrefixOf(runId: string): string {
  return `logs/${runId}/`;
}

export function notice({ runId, job, attempt }: LogRef): string {
  return `${runId}/${job}/${attempt}`;
}

// notice() in SQL, of a row's columns.
const noticeOfRow = "run_id || '/' || job || '/' || attempt";

// Whether a ReadLog follows the log (SQL, of its run, job and attempt). A
// write announces itself only then: every NOTIFY wakes every session that
// listens, on any channel.
function followed(runId: string, job: string, attempt: string): string {
  return `EXISTS (SELECT 1 FROM objects.log_followers f WHERE f.run_id = ${runId} AND f.job = ${job} AND f.attempt = ${attempt} AND f.followers > 0)`;
}

// When a log closed at `size` bytes is due for the archiver (SQL): at once
// if it outgrew `inlineMax`, never if it stays in Postgres.
function archiveDue(size: string, inlineMax: string): string {
  return `CASE WHEN ${size} > ${inlineMax} THEN now() END`;
}

// The columns a chunk's row gets from a StoredChunk, and its parameters
// from `first` on (the row's place in the log comes from elsewhere).
const chunkColumns = "bytes, lines, zstd, zstd_bytes, steps, first_ms, segments, ends_line";
function chunkValues(first: number): string {
  const p = (i: number) => `$${first + i}`;
  return `${p(0)}::bigint, ${p(1)}::bigint, ${p(2)}::bytea, octet_length(${p(2)}::bytea), ${p(3)}::text[], ${p(4)}::bigint, ${p(5)}::bytea, ${p(6)}::boolean`;
}
function chunkParameters(chunk: StoredChunk | undefined): unknown[] {
  if (!chunk) return [0, 0, Buffer.alloc(0), [], 0, Buffer.alloc(0), true];
  return [chunk.bytes, chunk.lines, chunk.zstd, chunk.steps, chunk.firstMs, chunk.index, chunk.endsLine];
}

// Writes job logs: chunks in Postgres while the attempt runs (each
// compressed, with its segments: log-chunk.ts); after it, their texts move
// to one object in S3 (log-archiver.ts), or, for a log of at most
// `inlineMaxBytes`, stay (an S3 request per small log costs more than the
// rows it would free). A closed log's object key says which: empty means it
// is in Postgres, for good or until the archiver has moved it (its
// archive_due is set). The chunks' rows stay either way: they are the
// log's index (log-reader.ts).
export class LogStore {
  readonly #pool: Pool;
  readonly #inlineMaxBytes: number;

  constructor(pool: Pool, inlineMaxBytes: number) {
    this.#pool = pool;
    this.#inlineMaxBytes = inlineMaxBytes;
  }

  // `writer`: the agent whose live attempt this log must be (undefined: no
  // check); the check rides in the statement that writes.
  async append(log: LogRef, seq: number, chunk: StoredChunk, writer?: string): Promise<void> {
    if (await this.#appendInOrder(log, seq, chunk, writer)) return;
    // Not the next chunk of a live attempt's open log: find out why, in a transaction.
    const { runId, job, attempt } = log;
    await inTransaction(this.#pool, async (client) => {
      await requireLiveAttempt(client, log, writer);
      await client.query(
        "INSERT INTO objects.logs (run_id, job, attempt, state) VALUES ($1, $2, $3, 'open') ON CONFLICT DO NOTHING",
        [runId, job, attempt],
      );
      const { rows } = await client.query(
        "SELECT * FROM objects.logs WHERE run_id = $1 AND job = $2 AND attempt = $3 FOR UPDATE",
        [runId, job, attempt],
      );
      const row = rows[0];
      if (seq <= Number(row.last_seq)) return;
      if (row.state !== "open") {
        throw new ConnectError(`log of ${runId}/${job} attempt ${attempt} is closed`, Code.FailedPrecondition);
      }
      if (seq !== Number(row.last_seq) + 1) {
        throw new ConnectError(`log chunk ${seq} arrived before chunk ${Number(row.last_seq) + 1}`, Code.FailedPrecondition);
      }
      await client.query(
        `INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, start_line, ${chunkColumns})
         VALUES ($1, $2, $3, $4, $5, $6, ${chunkValues(7)})`,
        [runId, job, attempt, seq, row.size, row.lines, ...chunkParameters(chunk)],
      );
      await client.query(
        "UPDATE objects.logs SET last_seq = $4, size = size + $5, lines = lines + $6 WHERE run_id = $1 AND job = $2 AND attempt = $3",
        [runId, job, attempt, seq, chunk.bytes, chunk.lines],
      );
      await client.query(`SELECT pg_notify($1, $2) WHERE ${followed("$3", "$4", "$5")}`, [logChannel, notice(log), runId, job, attempt]);
    });
  }

  // The common case in one statement: the chunk right after the last one of
  // an open log (or the first chunk of a new log). False if it was not that.
  async #appendInOrder(log: LogRef, seq: number, chunk: StoredChunk, writer: string | undefined): Promise<boolean> {
    const live = attemptIsLive("$1", "$2", "$5", "$7");
    const advance =
      seq === 1
        ? `INSERT INTO objects.logs (run_id, job, attempt, state, last_seq, size, lines)
           SELECT $1::uuid, $2::text, $5::int, 'open', 1, $8::bigint, $9::bigint WHERE ${live}
           ON CONFLICT DO NOTHING RETURNING 0::bigint AS start_offset, 0::bigint AS start_line`
        : `UPDATE objects.logs SET last_seq = $3, size = size + $8, lines = lines + $9
           WHERE run_id = $1 AND job = $2 AND attempt = $5 AND state = 'open' AND last_seq = $3 - 1 AND ${live}
           RETURNING size - $8 AS start_offset, lines - $9 AS start_line`;
    const { rowCount } = await this.#pool.query(
      `WITH log AS (${advance}), chunk AS (
         INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, start_line, ${chunkColumns})
         SELECT $1, $2, $5, $3, start_offset, start_line, ${chunkValues(8)} FROM log RETURNING seq
       )
       SELECT CASE WHEN ${followed("$1", "$2", "$5")} THEN pg_notify($4, $6) END FROM chunk`,
      [log.runId, log.job, seq, logChannel, log.attempt, notice(log), writer ?? null, ...chunkParameters(chunk)],
    );
    return rowCount === 1;
  }

  // Closes the log with `final`, its last chunk, if it was not appended: in
  // Postgres alone, so that no call waits on object storage. A log larger
  // than `inlineMaxBytes` is left for the archiver (log-archiver.ts), which
  // moves it to one object once storage answers; it reads from its chunks
  // until then. Returns the key it has or will have ("" if it stays here).
  async close(log: LogRef, final?: { seq: number; chunk: StoredChunk }, writer?: string): Promise<{ key: string; size: number }> {
    const closed = await this.#closeInOneStatement(this.#pool, log, final, writer);
    if (closed) return closed;
    // Not the close of a live attempt's open log with its next chunk: find out why, in a transaction.
    return inTransaction(this.#pool, async (client) => {
      await requireLiveAttempt(client, log, writer);
      const { runId, job, attempt } = log;
      const { rows } = await client.query(
        "SELECT state, object_key, archive_due, size, last_seq FROM objects.logs WHERE run_id = $1 AND job = $2 AND attempt = $3 FOR UPDATE",
        [runId, job, attempt],
      );
      const row = rows[0];
      if (row?.state === "closed") return { key: row.object_key || (row.archive_due ? logKey(log) : ""), size: Number(row.size) };
      const lastSeq = Number(row?.last_seq ?? 0);
      if (final && final.seq !== lastSeq + 1) {
        throw new ConnectError(`final log chunk ${final.seq} does not follow chunk ${lastSeq}`, Code.FailedPrecondition);
      }
      if (!row) {
        // Nothing was ever written: an empty log.
        await client.query(
          "INSERT INTO objects.logs (run_id, job, attempt, state, closed_at) VALUES ($1, $2, $3, 'closed', now())",
          [runId, job, attempt],
        );
        return { key: "", size: 0 };
      }
      const again = await this.#closeInOneStatement(client, log, final, undefined);
      if (!again) throw new Error(`log of ${runId}/${job} attempt ${attempt} could not be closed`);
      return again;
    });
  }

  // Closes, as they are, logs whose attempt ended without closing them (its
  // agent died, or could not reach this service before it completed the
  // task): their followers end, and the archiver takes the big ones. No
  // chunk can come for them any more: writes need a live attempt.
  async closeAbandoned(): Promise<number> {
    const { rows } = await this.#pool.query(
      `WITH closed AS (
         UPDATE objects.logs l SET state = 'closed', closed_at = now(), archive_due = ${archiveDue("l.size", "$1::bigint")}
         WHERE l.state = 'open'
           AND NOT EXISTS (SELECT 1 FROM auth.live_attempts a WHERE a.run_id = l.run_id AND a.job = l.job AND a.attempt = l.attempt)
         RETURNING l.run_id, l.job, l.attempt, l.archive_due IS NOT NULL AS archive
       )
       SELECT count(CASE WHEN ${followed("run_id", "job", "attempt")} THEN pg_notify($2, ${noticeOfRow}) END) AS announced, count(*)::int AS closed,
         count(CASE WHEN archive THEN pg_notify($3, '') END)::int AS due
       FROM closed`,
      [this.#inlineMaxBytes, logChannel, archiveChannel],
    );
    return rows[0].closed;
  }

  // The common case in one statement: an open log (or, with its first chunk
  // as `final`, a new one) closed with `final` after its last chunk, and
  // marked for the archiver if it outgrew `inlineMaxBytes`. Undefined if it
  // was not that.
  async #closeInOneStatement(
    db: Pool | PoolClient,
    log: LogRef,
    final: { seq: number; chunk: StoredChunk } | undefined,
    writer: string | undefined,
  ): Promise<{ key: string; size: number } | undefined> {
    const seq = final?.seq ?? 0;
    // $11 and $12: the final chunk's bytes and lines (0 without one).
    const live = attemptIsLive("$1", "$2", "$3", "$8");
    const closing =
      seq === 1
        ? `INSERT INTO objects.logs (run_id, job, attempt, state, last_seq, size, lines, closed_at, archive_due, archive_trace)
           SELECT $1, $2, $3, 'closed', 1, $11::bigint, $12::bigint, now(), ${archiveDue("$11::bigint", "$5::bigint")}, $10 WHERE ${live}
           ON CONFLICT DO NOTHING RETURNING size, lines, archive_due IS NOT NULL AS archive`
        : `UPDATE objects.logs SET state = 'closed', last_seq = greatest(last_seq, $4::bigint), size = size + $11::bigint,
             lines = lines + $12::bigint, closed_at = now(), archive_due = ${archiveDue("size + $11::bigint", "$5::bigint")}, archive_trace = $10
           WHERE run_id = $1 AND job = $2 AND attempt = $3 AND state = 'open'
             AND ($4::bigint = 0 OR last_seq = $4::bigint - 1) AND ${live}
           RETURNING size, lines, archive_due IS NOT NULL AS archive`;
    const { rows } = await db.query(
      `WITH closed AS (${closing}), chunk AS (
         INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, start_line, ${chunkColumns})
         SELECT $1, $2, $3, $4::bigint, size - $11::bigint, lines - $12::bigint, ${chunkValues(11)} FROM closed WHERE $4::bigint > 0
       )
       SELECT size, archive, CASE WHEN ${followed("$1", "$2", "$3")} THEN pg_notify($6, $7) END,
         CASE WHEN archive THEN pg_notify($9, '') END
       FROM closed`,
      [log.runId, log.job, log.attempt, seq, this.#inlineMaxBytes, logChannel, notice(log), writer ?? null, archiveChannel, traceParentOf(), ...chunkParameters(final?.chunk)],
    );
    if (rows.length !== 1) return undefined;
    return { key: rows[0].archive ? logKey(log) : "", size: Number(rows[0].size) };
  }

}
