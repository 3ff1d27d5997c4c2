import { Code, ConnectError } from "@connectrpc/connect";
import { inTransaction, type Pool } from "../../kit/src/db.ts";
import type { Notifier } from "../../kit/src/notifier.ts";
import type { ObjectStore } from "./object-store.ts";

export const logChannel = "otto_log";
export const maxChunkBytes = 1024 * 1024;

export function logKey(runId: string, job: string): string {
  return `logs/${runId}/${job}.log`;
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
    const bytes = Buffer.byteLength(text);
    if (bytes > maxChunkBytes) {
      throw new ConnectError(`log chunk is ${bytes} bytes; at most ${maxChunkBytes} allowed`, Code.ResourceExhausted);
    }
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
        bytes,
      ]);
      await client.query("SELECT pg_notify($1, $2)", [logChannel, `${runId}/${job}`]);
    });
  }

  // Uploads the whole log and only then marks it closed, so a crash in
  // between leaves it open and a repeated close uploads the same bytes again.
  async close(runId: string, job: string): Promise<{ key: string; size: number }> {
    await this.#pool.query(
      "INSERT INTO objects.logs (run_id, job, state) VALUES ($1, $2, 'open') ON CONFLICT DO NOTHING",
      [runId, job],
    );
    const { rows: logs } = await this.#pool.query("SELECT * FROM objects.logs WHERE run_id = $1 AND job = $2", [runId, job]);
    if (logs[0].state === "closed") return { key: logs[0].object_key, size: Number(logs[0].size) };
    const { rows: chunks } = await this.#pool.query(
      "SELECT text FROM objects.log_chunks WHERE run_id = $1 AND job = $2 ORDER BY seq",
      [runId, job],
    );
    const body = Buffer.from(chunks.map((c) => c.text).join(""));
    const key = logKey(runId, job);
    await this.#objects.put(key, body, "text/plain; charset=utf-8");
    await inTransaction(this.#pool, async (client) => {
      await client.query(
        `UPDATE objects.logs SET state = 'closed', object_key = $3, size = $4, closed_at = now()
         WHERE run_id = $1 AND job = $2 AND state = 'open'`,
        [runId, job, key, body.length],
      );
      await client.query("DELETE FROM objects.log_chunks WHERE run_id = $1 AND job = $2", [runId, job]);
      await client.query("SELECT pg_notify($1, $2)", [logChannel, `${runId}/${job}`]);
    });
    return { key, size: body.length };
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
