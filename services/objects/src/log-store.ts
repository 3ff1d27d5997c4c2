import { Code, ConnectError } from "@connectrpc/connect";
import { inTransaction, type Pool } from "../../kit/src/db.ts";
import { inSpan } from "../../kit/src/telemetry.ts";
import type { Notifier } from "../../kit/src/notifier.ts";
import type { ObjectStore } from "./object-store.ts";
import { attemptIsLive, requireLiveAttempt } from "../../kit/src/live-attempts.ts";

export const logChannel = "otto_log";
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

function notice({ runId, job, attempt }: LogRef): string {
  return `${runId}/${job}/${attempt}`;
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
// A closed log's object key says which: empty means it stayed in Postgres.
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
      await client.query("SELECT pg_notify($1, $2)", [logChannel, notice(log)]);
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
       SELECT pg_notify($6, $8) FROM chunk`,
      [log.runId, log.job, seq, text, Buffer.byteLength(text), logChannel, log.attempt, notice(log), writer ?? null],
    );
    return rowCount === 1;
  }

  // Closes the log with `final`, its last chunk, if it was not appended. A
  // small log is closed where it is; a larger one is uploaded whole and only
  // then marked closed, so a crash in between leaves it open and a repeated
  // close uploads the same bytes again.
  async close(log: LogRef, final?: { seq: number; text: string }, writer?: string): Promise<{ key: string; size: number }> {
    if (final) checkChunkSize(final.text);
    const inline = await this.#closeInPlace(log, final, writer);
    if (inline) return inline;
    await requireLiveAttempt(this.#pool, log, writer);
    const { runId, job, attempt } = log;
    const { rows } = await this.#pool.query(
      `SELECT l.state, l.object_key, l.size, l.last_seq,
         (SELECT string_agg(c.text, '' ORDER BY c.seq) FROM objects.log_chunks c
          WHERE c.run_id = $1 AND c.job = $2 AND c.attempt = $3) AS body
       FROM (SELECT 1) AS one LEFT JOIN objects.logs l ON l.run_id = $1 AND l.job = $2 AND l.attempt = $3`,
      [runId, job, attempt],
    );
    const row = rows[0];
    if (row.state === "closed") return { key: row.object_key, size: Number(row.size) };
    const lastSeq = Number(row.last_seq ?? 0);
    let body = row.body ?? "";
    if (final) {
      if (final.seq !== lastSeq + 1) {
        throw new ConnectError(`final log chunk ${final.seq} does not follow chunk ${lastSeq}`, Code.FailedPrecondition);
      }
      body += final.text;
    }
    const bytes = Buffer.from(body);
    const key = logKey(log);
    await inSpan("archive log", { "otto.object_key": key, "otto.size": bytes.length }, () =>
      this.#objects.put(key, bytes, "text/plain; charset=utf-8"),
    );
    await this.#pool.query(
      `WITH closed AS (
         INSERT INTO objects.logs AS l (run_id, job, attempt, state, object_key, size, last_seq, closed_at)
         VALUES ($1, $2, $3, 'closed', $4, $5, $6, now())
         ON CONFLICT (run_id, job, attempt) DO UPDATE SET state = 'closed', object_key = $4, size = $5, last_seq = $6, closed_at = now()
           WHERE l.state = 'open'
         RETURNING 1
       ), chunks AS (
         DELETE FROM objects.log_chunks WHERE run_id = $1 AND job = $2 AND attempt = $3
       )
       SELECT pg_notify($7, $8)`,
      [runId, job, attempt, key, bytes.length, final ? final.seq : lastSeq, logChannel, notice(log)],
    );
    return { key, size: bytes.length };
  }

  // The common case in one statement: an open log (or, with its first chunk
  // as `final`, a new one) that stays at most `inlineMaxBytes` with `final`
  // after its last chunk. Undefined if it was not that.
  async #closeInPlace(log: LogRef, final: { seq: number; text: string } | undefined, writer: string | undefined): Promise<{ key: string; size: number } | undefined> {
    const seq = final?.seq ?? 0;
    const bytes = final ? Buffer.byteLength(final.text) : 0;
    const live = attemptIsLive("$1", "$2", "$3", "$10");
    const closing =
      seq === 1
        ? `INSERT INTO objects.logs (run_id, job, attempt, state, last_seq, size, closed_at)
           SELECT $1, $2, $3, 'closed', 1, $5::bigint, now() WHERE $5::bigint <= $6::bigint AND ${live}
           ON CONFLICT DO NOTHING RETURNING size`
        : `UPDATE objects.logs SET state = 'closed', last_seq = greatest(last_seq, $4::bigint), size = size + $5::bigint, closed_at = now()
           WHERE run_id = $1 AND job = $2 AND attempt = $3 AND state = 'open'
             AND ($4::bigint = 0 OR last_seq = $4::bigint - 1) AND size + $5::bigint <= $6::bigint AND ${live}
           RETURNING size`;
    const { rows } = await this.#pool.query(
      `WITH closed AS (${closing}), chunk AS (
         INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, text)
         SELECT $1, $2, $3, $4::bigint, size - $5::bigint, $7 FROM closed WHERE $4::bigint > 0
       )
       SELECT size, pg_notify($8, $9) FROM closed`,
      [log.runId, log.job, log.attempt, seq, bytes, this.#inlineMaxBytes, final?.text ?? "", logChannel, notice(log), writer ?? null],
    );
    return rows.length === 1 ? { key: "", size: Number(rows[0].size) } : undefined;
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
    const { runId, job, attempt } = log;
    while (!signal.aborted) {
      const woken = follow ? this.#notifier.wait(logChannel, (p) => p === notice(log), 5_000, signal) : undefined;
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
      if (!follow || row?.state === "closed") return;
      await woken;
    }
  }
}
