import { setTimeout as delay } from "node:timers/promises";
import { context } from "@opentelemetry/api";
import type { PgBoss } from "pg-boss";
import { contextFromTraceParent } from "@otto/kit/telemetry";
import { inTransaction, type Pool } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import type { Notifier } from "@otto/kit/notifier";
import { advanceRun } from "./engine/advance-run.ts";
import { advanceChannel, advanceQueue, asBossDb, type AdvancePayload } from "./engine/run-queue.ts";
import { FencedError, fenceShard, type ShardManager } from "./shards.ts";

const uuidPattern = /^[0-9a-f-]{36}$/i;

// Fetch loops over the advance queues of the shards this coordinator owns.
// Each job is fetched, handled and completed in one transaction that first
// checks the shard's epoch: if this process dies or loses the shard midway,
// the transaction rolls back and the new owner fetches the same job.
export function startAdvanceWorkers(options: {
  pool: Pool;
  boss: PgBoss;
  notifier: Notifier;
  shards: ShardManager;
  memberId: string;
  log: Logger;
  concurrency: number;
}): { stop(): Promise<void> } {
  const { pool, boss, notifier, shards, memberId, log } = options;
  const stopping = new AbortController();
  const dirty = new Set<number>();
  notifier.on(advanceChannel, (payload) => dirty.add(Number(payload)));
  shards.on("changed", () => {
    for (const shard of shards.owned().keys()) notifier.poke(advanceChannel, String(shard));
  });
  let lastFullScan = 0;

  const advanceOne = (shard: number, epoch: number) =>
    inTransaction(pool, async (client) => {
      await fenceShard(client, shard, epoch, memberId);
      const db = asBossDb(client);
      const [job] = await boss.fetch<AdvancePayload>(advanceQueue(shard), { batchSize: 1, db });
      if (!job) return false;
      const runId = job.data?.runId;
      if (typeof runId === "string" && uuidPattern.test(runId)) {
        const traceparent = typeof job.data.traceparent === "string" ? job.data.traceparent : "";
        await context.with(contextFromTraceParent(traceparent), () => advanceRun(client, runId));
      } else {
        log.warn("dropping malformed advance job", { job_id: job.id });
      }
      await boss.complete(advanceQueue(shard), job.id, null, { db });
      return true;
    });

  const loop = async () => {
    while (!stopping.signal.aborted) {
      try {
        // Shards with news first; every owned shard now and then, in case a
        // notification was missed (a new owner has not heard the old ones).
        const owned = shards.owned();
        const fullScan = Date.now() - lastFullScan > 1_000;
        if (fullScan) lastFullScan = Date.now();
        // News about shards owned elsewhere is their owners' business.
        const candidates = fullScan ? [...owned.keys()] : [...dirty].filter((s) => owned.has(s));
        dirty.clear();
        let worked = false;
        for (const shard of candidates) {
          while (!stopping.signal.aborted && (await advanceOne(shard, owned.get(shard)!))) worked = true;
        }
        if (!worked && dirty.size === 0) {
          await notifier.wait(advanceChannel, (p) => owned.has(Number(p)), 1_000, stopping.signal);
        } else if (!worked) {
          await new Promise((resolve) => setImmediate(resolve));
        }
      } catch (err) {
        if (stopping.signal.aborted) break;
        if (err instanceof FencedError) {
          log.warn("fenced out of a shard", { err: err.message });
          await shards.tick();
          continue;
        }
        log.error("advance failed; will retry", { err });
        await delay(500, undefined, { signal: stopping.signal }).catch(() => {});
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
