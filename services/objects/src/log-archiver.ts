import type { Pool } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import type { Notifier } from "@otto/kit/notifier";
import type { Span } from "@opentelemetry/api";
import { contextFromTraceParent, inSpan } from "@otto/kit/telemetry";
import { archiveChannel, logChannel, logKey, notice, type LogRef } from "./log-store.ts";
import type { ObjectStore } from "./object-store.ts";
import { compressLogText } from "@otto/kit/log-compression";
import { SpooledBody } from "./spooled-body.ts";

// An archive up to this size is put from memory; a larger one is spooled
// to a temporary file and uploaded in parts.
const spoolBytes = 8 * 1024 * 1024;

export interface LogArchiverOptions {
  // How long a claimed log is this process's before another may take it
  // (longer than an object store request may take).
  claimMs?: number;
  // The longest wait between two looks for due logs.
  idleMs?: number;
  // Waits after failed archives: doubling from the first to the last.
  firstRetryMs?: number;
  maxRetryMs?: number;
}

// Moves closed logs from their chunks in Postgres to one object each, one
// log at a time, in the background of the objects service: no caller waits
// on object storage, and a log storage did not take is tried again, later
// and later, until it does. What is left to do is in objects.logs
// (archive_due), so a restarted or another objects process picks it up. A
// log is claimed by moving its due time past a lease: two processes do not
// archive the same log at once, and one that died holding a log lets it go.
export class LogArchiver {
  readonly #pool: Pool;
  readonly #objects: ObjectStore;
  readonly #notifier: Notifier;
  readonly #log: Logger;
  readonly #claimMs: number;
  readonly #idleMs: number;
  readonly #firstRetryMs: number;
  readonly #maxRetryMs: number;
  readonly #stop = new AbortController();
  #failures = 0;
  #loop: Promise<void> | undefined;

  constructor(pool: Pool, objects: ObjectStore, notifier: Notifier, log: Logger, options: LogArchiverOptions = {}) {
    this.#pool = pool;
    this.#objects = objects;
    this.#notifier = notifier;
    this.#log = log;
    this.#claimMs = options.claimMs ?? 120_000;
    this.#idleMs = options.idleMs ?? 10_000;
    this.#firstRetryMs = options.firstRetryMs ?? 500;
    this.#maxRetryMs = options.maxRetryMs ?? 30_000;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  // Stops looking for work; an archive in flight is abandoned to its claim's lease.
  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.race([this.#loop, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      let waitMs: number;
      try {
        waitMs = await this.archiveNext();
      } catch (err) {
        // Postgres itself did not answer.
        if (signal.aborted) return;
        this.#log.warn("log archiver: could not look for due logs", { err });
        waitMs = this.#idleMs;
      }
      if (waitMs > 0 && !signal.aborted) await this.#notifier.wait(archiveChannel, () => true, waitMs, signal);
    }
  }

  // Archives the log that has been due longest, if any. Returns how long to
  // wait before looking again: 0 when there may be more to do at once.
  async archiveNext(): Promise<number> {
    const { rows } = await this.#pool.query(
      `WITH due AS (
         SELECT run_id, job, attempt FROM objects.logs WHERE archive_due <= now()
         ORDER BY archive_due LIMIT 1 FOR UPDATE SKIP LOCKED
       )
       UPDATE objects.logs l SET archive_due = now() + make_interval(secs => $1::float8 / 1000)
       FROM due WHERE l.run_id = due.run_id AND l.job = due.job AND l.attempt = due.attempt
       RETURNING l.run_id, l.job, l.attempt, l.archive_trace`,
      [this.#claimMs],
    );
    if (rows.length === 0) return this.#untilNextDue();
    const log: LogRef = { runId: rows[0].run_id, job: rows[0].job, attempt: rows[0].attempt };
    try {
      // Part of the run's trace, as a child of the call that closed the log.
      await inSpan("archive log", { "otto.object_key": logKey(log) }, (span) => this.#archive(log, span), contextFromTraceParent(rows[0].archive_trace));
      this.#failures = 0;
      return 0;
    } catch (err) {
      const retryMs = Math.min(this.#maxRetryMs, this.#firstRetryMs * 2 ** Math.min(this.#failures, 20));
      this.#failures++;
      this.#log.warn("could not archive a log; it stays readable from Postgres and is tried again", {
        run_id: log.runId,
        job: log.job,
        attempt: log.attempt,
        retry_ms: retryMs,
        err,
      });
      await this.#pool.query(
        `UPDATE objects.logs SET archive_due = now() + make_interval(secs => $4::float8 / 1000)
         WHERE run_id = $1 AND job = $2 AND attempt = $3 AND archive_due IS NOT NULL`,
        [log.runId, log.job, log.attempt, retryMs],
      );
      // Storage is likely down: wait for it rather than try the next log.
      return retryMs;
    }
  }

  async #untilNextDue(): Promise<number> {
    const { rows } = await this.#pool.query(
      "SELECT extract(epoch FROM min(archive_due) - now()) * 1000 AS ms FROM objects.logs WHERE archive_due IS NOT NULL",
    );
    if (rows[0].ms === null) return this.#idleMs;
    return Math.min(this.#idleMs, Math.max(10, Math.ceil(Number(rows[0].ms))));
  }

  // Uploads the log's chunks as one object (their compressed texts one
  // after another: a zstd stream of the whole log), then points the log at
  // it and drops the texts from their rows, which keep where each chunk's
  // bytes are in the object, in one statement. Done twice (a claim that
  // lapsed), it uploads the same bytes again and changes nothing more.
  async #archive(log: LogRef, span: Span): Promise<void> {
    const { runId, job, attempt } = log;
    const { rows } = await this.#pool.query(
      `SELECT l.size, l.object_key, l.archive_due IS NOT NULL AS due, coalesce(sum(c.bytes), 0) AS chunk_bytes
       FROM objects.logs l LEFT JOIN objects.log_chunks c USING (run_id, job, attempt)
       WHERE l.run_id = $1 AND l.job = $2 AND l.attempt = $3 GROUP BY l.run_id, l.job, l.attempt`,
      [runId, job, attempt],
    );
    const row = rows[0];
    if (!row || row.object_key !== "" || !row.due) return;
    if (Number(row.chunk_bytes) !== Number(row.size)) {
      // Never expected: keep the chunks where they are and stop trying.
      this.#log.error("a closed log's chunks do not add up to its size; leaving it in Postgres", {
        run_id: runId,
        job,
        attempt,
        size: Number(row.size),
        chunks_bytes: Number(row.chunk_bytes),
      });
      await this.#pool.query("UPDATE objects.logs SET archive_due = NULL WHERE run_id = $1 AND job = $2 AND attempt = $3", [runId, job, attempt]);
      return;
    }
    const key = logKey(log);
    const body = new SpooledBody(spoolBytes);
    const placement: { seq: number; offset: number; bytes: number }[] = [];
    try {
      for (let after = 0; ; ) {
        const { rows: chunks } = await this.#pool.query(
          `SELECT seq, zstd, text FROM objects.log_chunks WHERE run_id = $1 AND job = $2 AND attempt = $3 AND seq > $4
           ORDER BY seq LIMIT 8`,
          [runId, job, attempt, after],
        );
        for (const chunk of chunks) {
          // Chunks written before logs were compressed are compressed now.
          const bytes: Buffer = chunk.zstd ?? (await compressLogText(Buffer.from(chunk.text ?? "")));
          placement.push({ seq: Number(chunk.seq), offset: body.size, bytes: bytes.length });
          await body.write(bytes);
          after = Number(chunk.seq);
        }
        if (chunks.length < 8) break;
      }
      span.setAttribute("otto.size", Number(row.size));
      span.setAttribute("otto.stored_size", body.size);
      await body.upload((content, size) => this.#objects.put(key, content, "application/zstd", size));
    } finally {
      await body.discard();
    }
    await this.#pool.query(
      `WITH archived AS (
         UPDATE objects.logs SET object_key = $4, archive_due = NULL
         WHERE run_id = $1 AND job = $2 AND attempt = $3 AND object_key = ''
         RETURNING 1
       ), chunks AS (
         UPDATE objects.log_chunks c SET zstd = NULL, text = NULL, stored_offset = p.stored_offset, zstd_bytes = p.zstd_bytes
         FROM unnest($7::bigint[], $8::bigint[], $9::bigint[]) AS p (seq, stored_offset, zstd_bytes)
         WHERE c.run_id = $1 AND c.job = $2 AND c.attempt = $3 AND c.seq = p.seq AND EXISTS (SELECT 1 FROM archived)
       )
       SELECT pg_notify($5, $6) FROM archived`,
      [runId, job, attempt, key, logChannel, notice(log), placement.map((p) => p.seq), placement.map((p) => p.offset), placement.map((p) => p.bytes)],
    );
  }
}
