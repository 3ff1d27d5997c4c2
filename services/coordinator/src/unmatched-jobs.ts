import type { Instance } from "@otto/gen/v1/registry_service_pb";
import { formatDuration } from "@otto/contracts/duration";
import { inTransaction, type Pool } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import { failUnmatchedJob } from "./engine/fail-unmatched-job.ts";
import { fenceShard, FencedError, type ShardManager } from "./shards.ts";

// Fails the jobs of this coordinator's shards that no live agent could take
// (none has all their labels) for OTTO_UNMATCHED_JOB_TIMEOUT, instead of
// letting them wait forever. The time is counted from when this process
// first saw the job unmatched, so a coordinator that takes a shard over
// starts counting afresh: a job may wait longer, never shorter. While the
// registry cannot be asked, nothing is judged.
export function startUnmatchedJobSweeper(options: {
  pool: Pool;
  log: Logger;
  shards: ShardManager;
  memberId: string;
  liveAgents: () => Promise<Instance[]>;
  timeoutMs: number;
}): { stop(): void } {
  const { pool, log, shards, memberId, liveAgents, timeoutMs } = options;
  const unmatchedSince = new Map<string, number>();
  let running = false;
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      const owned = shards.owned();
      const agents = owned.size > 0 ? await liveAgents().catch(() => undefined) : undefined;
      if (!agents) return;
      const { rows } = await pool.query(
        `SELECT t.id, t.run_id, t.labels, r.shard FROM coordinator.tasks t JOIN coordinator.runs r ON r.id = t.run_id
         WHERE t.status = 'pending' AND r.shard = ANY($1) LIMIT 1000`,
        [[...owned.keys()]],
      );
      const now = Date.now();
      const pending = new Set<string>();
      for (const task of rows as { id: string; run_id: string; labels: string[]; shard: number }[]) {
        pending.add(task.id);
        if (agents.some((agent) => task.labels.every((label) => agent.labels.includes(label)))) {
          unmatchedSince.delete(task.id);
          continue;
        }
        const since = unmatchedSince.get(task.id) ?? now;
        unmatchedSince.set(task.id, since);
        if (now - since < timeoutMs) continue;
        const labels = task.labels.length > 0 ? ` with the labels [${task.labels.join(", ")}]` : "";
        const message = `no live agent${labels} for ${formatDuration(timeoutMs / 1000)} (OTTO_UNMATCHED_JOB_TIMEOUT)`;
        const failed = await inTransaction(pool, async (client) => {
          await fenceShard(client, task.shard, owned.get(task.shard)!, memberId);
          return failUnmatchedJob(client, task.run_id, task.id, message);
        });
        if (failed) log.warn("job failed: no agent could take it", { run_id: task.run_id, labels: task.labels });
        unmatchedSince.delete(task.id);
      }
      for (const id of unmatchedSince.keys()) if (!pending.has(id)) unmatchedSince.delete(id);
    } catch (err) {
      if (!(err instanceof FencedError)) log.error("unmatched job sweep failed", { err });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(sweep, Math.max(100, Math.min(5_000, timeoutMs / 4)));
  return { stop: () => clearInterval(timer) };
}
