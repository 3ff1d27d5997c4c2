import { Code, ConnectError } from "@connectrpc/connect";
import { inTransaction, type Pool, type PoolClient } from "../../kit/src/db.ts";
import type { Notifier } from "../../kit/src/notifier.ts";
import { traceParentOf } from "../../kit/src/telemetry.ts";
import type { ObjectStore } from "./object-store.ts";
import { attemptIsLive, requireLiveAttempt } from "../../kit/src/live-attempts.ts";

export const logChannel = "otto_log";
// Wakes the archivers when a closed log is due to move to object storage.
export const archiveChannel = "otto_log_archive";
export const maxChunkBytes = 1024 * 1024;

// One log per attempt of a job.
export interface LogRef {
  runId: string;
  job: string;
  attempt: number;
}

export function logKey({ runId, job, attempt }: LogRef): string {
  return `logs/${runId}/${job}/attempt-${attempt}.log`;
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

function checkChunkSize(text: string) {
  const bytes = Buffer.byteLength(text);
  if (bytes > maxChunkBytes) {
    throw new ConnectError(`log chunk is ${bytes} bytes; at most ${maxChunkBytes} allowed`, Code.ResourceExhausted);
  }
}

// Job logs: chunks in Postgres while the attempt runs; after it, one object
// in S3, or, for a log of at most `inlineMaxBytes`, the same chunks, kept
// (an S3 request per small log costs more than the rows it would free).
// A closed log's object key says which: empty means it is in Postgres, for
// good or until the archiver has moved it (its archive_due is set).
export class LogStore {
  readonly #pool: Pool;
  readonly #objects: ObjectStore;
  readonly #notifier: Notifier;
  readonly #inlineMaxBytes: number;

  constructor(pool: Pool, objects: ObjectStore, notifier: Notifier, inlineMaxBytes: number) {
    this.#pool = pool;
    this.#objects = objects;
    this.#notifier = notifier;
    this.#inlineMaxBytes = inlineMaxBytes;
  }

  // `writer`: the agent whose live attempt this log must be (undefined: no
  // check); the check rides in the statement that writes.
  async append(log: LogRef, seq: number, text: string, writer?: string): Promise<void> {
    checkChunkSize(text);
    if (await this.#appendInOrder(log, seq, text, writer)) return;
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
        "INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, text) VALUES ($1, $2, $3, $4, $5, $6)",
        [runId, job, attempt, seq, row.size, text],
      );
      await client.query(
        "UPDATE objects.logs SET last_seq = $4, size = size + $5 WHERE run_id = $1 AND job = $2 AND attempt = $3",
        [runId, job, attempt, seq, Buffer.byteLength(text)],
      );
      await client.query(`SELECT pg_notify($1, $2) WHERE ${followed("$3", "$4", "$5")}`, [logChannel, notice(log), runId, job, attempt]);
    });
  }

  // The common case in one statement: the chunk right after the last one of
  // an open log (or the first chunk of a new log). False if it was not that.
  async #appendInOrder(log: LogRef, seq: number, text: string, writer: string | undefined): Promise<boolean> {
    const live = attemptIsLive("$1", "$2", "$7", "$9");
    const advance =
      seq === 1
        ? `INSERT INTO objects.logs (run_id, job, attempt, state, last_seq, size)
           SELECT $1::uuid, $2::text, $7::int, 'open', 1, $5::bigint WHERE ${live}
           ON CONFLICT DO NOTHING RETURNING 0::bigint AS start_offset`
        : `UPDATE objects.logs SET last_seq = $3, size = size + $5
           WHERE run_id = $1 AND job = $2 AND attempt = $7 AND state = 'open' AND last_seq = $3 - 1 AND ${live}
           RETURNING size - $5 AS start_offset`;
    const { rowCount } = await this.#pool.query(
      `WITH log AS (${advance}), chunk AS (
         INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, text)
         SELECT $1, $2, $7, $3, start_offset, $4 FROM log RETURNING seq
       )
       SELECT CASE WHEN ${followed("$1", "$2", "$7")} THEN pg_notify($6, $8) END FROM chunk`,
      [log.runId, log.job, seq, text, Buffer.byteLength(text), logChannel, log.attempt, notice(log), writer ?? null],
    );
    return rowCount === 1;
  }

  // Closes the log with `final`, its last chunk, if it was not appended: in
  // Postgres alone, so that no call waits on object storage. A log larger
  // than `inlineMaxBytes` is left for the archiver (log-archiver.ts), which
  // moves it to one object once storage answers; it reads from its chunks
  // until then. Returns the key it has or will have ("" if it stays here).
  async close(log: LogRef, final?: { seq: number; text: string }, writer?: string): Promise<{ key: string; size: number }> {
    if (final) checkChunkSize(final.text);
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
    final: { seq: number; text: string } | undefined,
    writer: string | undefined,
  ): Promise<{ key: string; size: number } | undefined> {
    const seq = final?.seq ?? 0;
    const bytes = final ? Buffer.byteLength(final.text) : 0;
    const live = attemptIsLive("$1", "$2", "$3", "$10");
    const closing =
      seq === 1
        ? `INSERT INTO objects.logs (run_id, job, attempt, state, last_seq, size, closed_at, archive_due, archive_trace)
           SELECT $1, $2, $3, 'closed', 1, $5::bigint, now(), ${archiveDue("$5::bigint", "$6::bigint")}, $12 WHERE ${live}
           ON CONFLICT DO NOTHING RETURNING size, archive_due IS NOT NULL AS archive`
        : `UPDATE objects.logs SET state = 'closed', last_seq = greatest(last_seq, $4::bigint), size = size + $5::bigint, closed_at = now(),
             archive_due = ${archiveDue("size + $5::bigint", "$6::bigint")}, archive_trace = $12
           WHERE run_id = $1 AND job = $2 AND attempt = $3 AND state = 'open'
             AND ($4::bigint = 0 OR last_seq = $4::bigint - 1) AND ${live}
           RETURNING size, archive_due IS NOT NULL AS archive`;
    const { rows } = await db.query(
      `WITH closed AS (${closing}), chunk AS (
         INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, text)
         SELECT $1, $2, $3, $4::bigint, size - $5::bigint, $7 FROM closed WHERE $4::bigint > 0
       )
       SELECT size, archive, CASE WHEN ${followed("$1", "$2", "$3")} THEN pg_notify($8, $9) END,
         CASE WHEN archive THEN pg_notify($11, '') END
       FROM closed`,
      [log.runId, log.job, log.attempt, seq, bytes, this.#inlineMaxBytes, final?.text ?? "", logChannel, notice(log), writer ?? null, archiveChannel, traceParentOf()],
    );
    if (rows.length !== 1) return undefined;
    return { key: rows[0].archive ? logKey(log) : "", size: Number(rows[0].size) };
  }

  // The latest attempt of a job that has a log, or 1 if none has yet.
  async latestAttempt(runId: string, job: string): Promise<number> {
    const { rows } = await this.#pool.query(
      "SELECT coalesce(max(attempt), 1) AS attempt FROM objects.logs WHERE run_id = $1 AND job = $2",
      [runId, job],
    );
    return rows[0].attempt;
  }

  // Yields the log's text from `offset` on; with `follow`, keeps waiting for
  // more until the log is closed.
  async *read(log: LogRef, offset: number, follow: boolean, signal: AbortSignal) {
    if (!follow) return yield* this.#read(log, offset, false, signal);
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
      yield* this.#read(log, offset, true, signal);
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

  async *#read(log: LogRef, offset: number, follow: boolean, signal: AbortSignal) {
    const { runId, job, attempt } = log;
    let lookedAgain = false;
    for (let waits = 0; !signal.aborted; waits++) {
      const woken = follow ? this.#notifier.wait(logChannel, (p) => p === notice(log), waits === 0 ? 1_000 : 5_000, signal) : undefined;
      const { rows } = await this.#pool.query(
        "SELECT * FROM objects.logs WHERE run_id = $1 AND job = $2 AND attempt = $3",
        [runId, job, attempt],
      );
      const row = rows[0];
      if (row?.state === "closed" && row.object_key !== "") {
        if (offset < Number(row.size)) {
          const bytes = await this.#objects.readFrom(row.object_key, offset);
          yield { text: bytes.toString("utf8"), offset };
        }
        return;
      }
      if (row) {
        const { rows: chunks } = await this.#pool.query(
          `SELECT start_offset, text FROM objects.log_chunks
           WHERE run_id = $1 AND job = $2 AND attempt = $3 AND start_offset + octet_length(text) > $4 ORDER BY seq`,
          [runId, job, attempt, offset],
        );
        for (const chunk of chunks) {
          const start = Number(chunk.start_offset);
          const buffer = Buffer.from(chunk.text);
          const text = offset > start ? buffer.subarray(offset - start).toString("utf8") : chunk.text;
          yield { text, offset: Math.max(offset, start) };
          offset = start + buffer.length;
        }
      }
      // A closed log read short had its chunks moved to object storage
      // between the two queries: read the rest from there.
      if (row?.state === "closed" && offset < Number(row.size) && !lookedAgain) {
        lookedAgain = true;
        continue;
      }
      if (!follow || row?.state === "closed") return;
      await woken;
    }
  }
}
