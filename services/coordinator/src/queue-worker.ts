import { setTimeout as delay } from "node:timers/promises";
import type { PgBoss } from "pg-boss";
import { inTransaction, type Pool, type PoolClient } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import type { Notifier } from "@otto/kit/notifier";
import { asBossDb } from "./engine/run-queue.ts";

export interface QueuedJob<T> {
  id: string;
  data: T;
  // Tries before this one, and how many pg-boss makes in all after the first.
  retryCount: number;
  retryLimit: number;
}

// Fetch loops over one pg-boss queue that any coordinator may work. Each job
// is fetched, handled and completed in one transaction: a coordinator that
// dies midway rolls it back, and a peer fetches the same job at once. A
// handler that throws has its database work undone and the job failed in
// the same transaction, which pg-boss retries after its back-off.
export function startQueueWorker<T>(options: {
  pool: Pool;
  boss: PgBoss;
  notifier: Notifier;
  queue: string;
  // Notified when the queue has news; the loops also look every `pollMs`
  // (default 2 s), for retries coming due and jobs pg-boss itself made.
  channel: string;
  log: Logger;
  concurrency?: number;
  pollMs?: number;
  handle: (job: QueuedJob<T>, client: PoolClient) => Promise<void>;
  // After the last try failed: what is left to do (in the same transaction,
  // the handler's work undone); the job then counts as done.
  giveUp?: (job: QueuedJob<T>, client: PoolClient, err: unknown) => Promise<void>;
}): { stop(): Promise<void> } {
  const { pool, boss, notifier, queue, channel, log } = options;
  const stopping = new AbortController();

  const workOne = () =>
    inTransaction(pool, async (client) => {
      const db = asBossDb(client);
      const [job] = await boss.fetch<T>(queue, { batchSize: 1, db, includeMetadata: true });
      if (!job) return false;
      const queued = { id: job.id, data: job.data, retryCount: job.retryCount, retryLimit: job.retryLimit };
      await client.query("SAVEPOINT work");
      try {
        await options.handle(queued, client);
        await boss.complete(queue, job.id, null, { db });
      } catch (err) {
        await client.query("ROLLBACK TO SAVEPOINT work");
        const last = job.retryCount >= job.retryLimit;
        log.warn(last ? `${queue} job failed its last try` : `${queue} job failed; pg-boss retries it after its back-off`, { job_id: job.id, retry: job.retryCount, err });
        if (last && options.giveUp) {
          await options.giveUp(queued, client, err);
          // Handled by giving up: done, so that it holds nothing back.
          await boss.complete(queue, job.id, { gaveUp: (err as Error).message }, { db });
        } else {
          await boss.fail(queue, job.id, { message: (err as Error).message }, { db });
        }
      }
      return true;
    });

  const loop = async () => {
    while (!stopping.signal.aborted) {
      try {
        if (await workOne()) continue;
        await notifier.wait(channel, () => true, options.pollMs ?? 2_000, stopping.signal);
      } catch (err) {
        if (stopping.signal.aborted) break;
        log.error(`working ${queue} failed; will retry`, { err });
        await delay(500, undefined, { signal: stopping.signal }).catch(() => {});
      }
    }
  };
  const loops = Array.from({ length: options.concurrency ?? 1 }, loop);
  return {
    async stop() {
      stopping.abort();
      await Promise.all(loops);
    },
  };
}

export async function ensureQueue(boss: PgBoss, queue: string, options: object): Promise<void> {
  if (await boss.getQueue(queue)) return;
  // Another coordinator may be creating it at the same moment.
  await boss.createQueue(queue, options).catch(async (err) => {
    if (!(await boss.getQueue(queue))) throw err;
  });
}
