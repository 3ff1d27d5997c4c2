import { Code, ConnectError } from "@connectrpc/connect";
import { inTransaction, type Pool } from "../../kit/src/db.ts";
import { inSpan } from "../../kit/src/telemetry.ts";
import type { Notifier } from "../../kit/src/notifier.ts";
import type { ObjectStore } from "./object-store.ts";

export const logChannel = "otto_log";
export const maxChunkBytes = 1024 * 1024;

export function logKey(runId: string, job: string): string {
  return `logs/${runId}/${job}.log`;
}

function checkChunkSize(text: string) {
  const bytes = Buffer.byteLength(text);
  if (bytes > maxChunkBytes) {
    throw new ConnectError(`log chunk is ${bytes} bytes; at most ${maxChunkBytes} allowed`, Code.ResourceExhausted);
  }
}

// Job logs: chunks in Postgres while the job runs, one object in S3 after.
export class LogStore {
  readonly #pool: Pool;
  readonly #objects: ObjectStore;
  readonly #notifier: Notifier;

  constructor(pool: Pool, objects: ObjectStore, notifier: Notifier) {
    this.#pool = pool;
    this.#objects = objects;
    this.#notifier = notifier;
  }

  async append(runId: string, job: string, seq: number, text: string): Promise<void> {
    checkChunkSize(text);
    if (await this.#appendInOrder(runId, job, seq, text)) return;
    // Not the next chunk of an open log: find out why, in a transaction.
    await inTransaction(this.#pool, async (client) => {
      await client.query(
        "INSERT INTO objects.logs (run_id, job, state) VALUES ($1, $2, 'open') ON CONFLICT DO NOTHING",
        [runId, job],
      );
      const { rows } = await client.query("SELECT * FROM objects.logs WHERE run_id = $1 AND job = $2 FOR UPDATE", [runId, job]);
      const log = rows[0];
      if (seq <= Number(log.last_seq)) return;
      if (log.state !== "open") throw new ConnectError(`log of ${runId}/${job} is closed`, Code.FailedPrecondition);
      if (seq !== Number(log.last_seq) + 1) {
        throw new ConnectError(`log chunk ${seq} arrived before chunk ${Number(log.last_seq) + 1}`, Code.FailedPrecondition);
      }
      await client.query(
        "INSERT INTO objects.log_chunks (run_id, job, seq, start_offset, text) VALUES ($1, $2, $3, $4, $5)",
        [runId, job, seq, log.size, text],
      );
      await client.query("UPDATE objects.logs SET last_seq = $3, size = size + $4 WHERE run_id = $1 AND job = $2", [
        runId,
        job,
        seq,
        Buffer.byteLength(text),
      ]);
      await client.query("SELECT pg_notify($1, $2)", [logChannel, `${runId}/${job}`]);
    });
  }

  // The common case in one statement: the chunk right after the last one of
  // an open log (or the first chunk of a new log). False if it was not that.
  async #appendInOrder(runId: string, job: string, seq: number, text: string): Promise<boolean> {
    const advance =
      seq === 1
        ? `INSERT INTO objects.logs (run_id, job, state, last_seq, size) VALUES ($1, $2, 'open', 1, $5)
           ON CONFLICT DO NOTHING RETURNING 0::bigint AS start_offset`
        : `UPDATE objects.logs SET last_seq = $3, size = size + $5
           WHERE run_id = $1 AND job = $2 AND state = 'open' AND last_seq = $3 - 1 RETURNING size - $5 AS start_offset`;
    const { rowCount } = await this.#pool.query(
      `WITH log AS (${advance}), chunk AS (
         INSERT INTO objects.log_chunks (run_id, job, seq, start_offset, text)
         SELECT $1, $2, $3, start_offset, $4 FROM log RETURNING seq
       )
       SELECT pg_notify($6, $1 || '/' || $2) FROM chunk`,
      [runId, job, seq, text, Buffer.byteLength(text), logChannel],
    );
    return rowCount === 1;
  }

  // Uploads the whole log (with `final`, its last chunk, if it was not
  // appended) and only then marks it closed, so a crash in between leaves it
  // open and a repeated close uploads the same bytes again.
  async close(runId: string, job: string, final?: { seq: number; text: string }): Promise<{ key: string; size: number }> {
    if (final) checkChunkSize(final.text);
    const { rows } = await this.#pool.query(
      `SELECT l.state, l.object_key, l.size, l.last_seq,
         (SELECT string_agg(c.text, '' ORDER BY c.seq) FROM objects.log_chunks c WHERE c.run_id = $1 AND c.job = $2) AS body
       FROM (SELECT 1) AS one LEFT JOIN objects.logs l ON l.run_id = $1 AND l.job = $2`,
      [runId, job],
    );
    const log = rows[0];
    if (log.state === "closed") return { key: log.object_key, size: Number(log.size) };
    const lastSeq = Number(log.last_seq ?? 0);
    let body = log.body ?? "";
    if (final) {
      if (final.seq !== lastSeq + 1) {
        throw new ConnectError(`final log chunk ${final.seq} does not follow chunk ${lastSeq}`, Code.FailedPrecondition);
      }
      body += final.text;
    }
    const bytes = Buffer.from(body);
    const key = logKey(runId, job);
    await inSpan("archive log", { "otto.object_key": key, "otto.size": bytes.length }, () =>
      this.#objects.put(key, bytes, "text/plain; charset=utf-8"),
    );
    await this.#pool.query(
      `WITH closed AS (
         INSERT INTO objects.logs AS l (run_id, job, state, object_key, size, last_seq, closed_at)
         VALUES ($1, $2, 'closed', $3, $4, $5, now())
         ON CONFLICT (run_id, job) DO UPDATE SET state = 'closed', object_key = $3, size = $4, last_seq = $5, closed_at = now()
           WHERE l.state = 'open'
         RETURNING 1
       ), chunks AS (
         DELETE FROM objects.log_chunks WHERE run_id = $1 AND job = $2
       )
       SELECT pg_notify($6, $1 || '/' || $2)`,
      [runId, job, key, bytes.length, final ? final.seq : lastSeq, logChannel],
    );
    return { key, size: bytes.length };
  }

  // Yields the log's text from `offset` on; with `follow`, keeps waiting for
  // more until the log is closed.
  async *read(runId: string, job: string, offset: number, follow: boolean, signal: AbortSignal) {
    while (!signal.aborted) {
      const woken = follow ? this.#notifier.wait(logChannel, (p) => p === `${runId}/${job}`, 5_000, signal) : undefined;
      const { rows: logs } = await this.#pool.query("SELECT * FROM objects.logs WHERE run_id = $1 AND job = $2", [runId, job]);
      const log = logs[0];
      if (log?.state === "closed") {
        if (offset < Number(log.size)) {
          const bytes = await this.#objects.readFrom(log.object_key, offset);
          yield { text: bytes.toString("utf8"), offset };
        }
        return;
      }
      if (log) {
        const { rows: chunks } = await this.#pool.query(
          `SELECT start_offset, text FROM objects.log_chunks
           WHERE run_id = $1 AND job = $2 AND start_offset + octet_length(text) > $3 ORDER BY seq`,
          [runId, job, offset],
        );
        for (const chunk of chunks) {
          const start = Number(chunk.start_offset);
          const buffer = Buffer.from(chunk.text);
          const text = offset > start ? buffer.subarray(offset - start).toString("utf8") : chunk.text;
          yield { text, offset: Math.max(offset, start) };
          offset = start + buffer.length;
        }
      }
      if (!follow) return;
      await woken;
    }
  }
}
