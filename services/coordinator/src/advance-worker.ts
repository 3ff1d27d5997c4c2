import { setTimeout as delay } from "node:timers/promises";
import type { PgBoss } from "pg-boss";
import { inTransaction, type Pool } from "../../kit/src/db.ts";
import type { Logger } from "../../kit/src/log.ts";
import type { Notifier } from "../../kit/src/notifier.ts";
import { advanceRun } from "./advance-run.ts";
import { advanceChannel, advanceQueue, asBossDb, type AdvancePayload } from "./run-queue.ts";

const uuidPattern = /^[0-9a-f-]{36}$/i;

// Fetch loops over the advance queue. Each job is fetched, handled and
// completed in one transaction: if this process dies midway, the transaction
// rolls back and a peer fetches the same job at once.
export function startAdvanceWorkers(options: {
  pool: Pool;
  boss: PgBoss;
  notifier: Notifier;
  log: Logger;
  concurrency: number;
}): { stop(): Promise<void> } {
  const { pool, boss, notifier, log } = options;
  const stopping = new AbortController();
  const loop = async () => {
    while (!stopping.signal.aborted) {
      try {
        const worked = await inTransaction(pool, async (client) => {
          const db = asBossDb(client);
          const [job] = await boss.fetch<AdvancePayload>(advanceQueue, { batchSize: 1, db });
          if (!job) return false;
          const runId = job.data?.runId;
          if (typeof runId === "string" && uuidPattern.test(runId)) {
            await advanceRun(client, runId);
          } else {
            log.warn("dropping malformed advance job", { job_id: job.id });
          }
          await boss.complete(advanceQueue, job.id, null, { db });
          return true;
        });
        if (!worked) await notifier.wait(advanceChannel, () => true, 2_000, stopping.signal);
      } catch (err) {
        if (stopping.signal.aborted) break;
        log.error("advance failed; will retry", { err });
        await delay(1_000, undefined, { signal: stopping.signal }).catch(() => {});
      }
    }
  };
  const loops = Array.from({ length: options.concurrency }, loop);
  return {
    async stop() {
      stopping.abort();
      await Promise.all(loops);
    },
  };
}
