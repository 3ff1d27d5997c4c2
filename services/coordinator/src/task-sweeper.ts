import type { PgBoss } from "pg-boss";
import { inTransaction, type Pool } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import type { Notifier } from "@otto/kit/notifier";
import { advanceRun } from "./engine/advance-run.ts";
import { groupsChannel, runsWhoseTurnCame } from "./engine/concurrency-group.ts";
import { expireLease } from "./engine/expire-lease.ts";
import { expireApproval } from "./engine/expire-approval.ts";
import { RunState } from "./engine/states.ts";
import { fenceShard, FencedError, type ShardManager } from "./shards.ts";

// Ends tasks whose agent stopped heartbeating, and jobs nobody approved in
// time, so no run stays RUNNING forever; and starts runs whose turn in their
// concurrency group's line has come (woken when a run of a group ends).
// Each coordinator sweeps the runs of the shards it owns.
export function startTaskSweeper(options: {
  pool: Pool;
  boss: PgBoss;
  notifier: Notifier;
  log: Logger;
  shards: ShardManager;
  memberId: string;
  intervalMs: number;
}) {
  const { pool, boss, log, shards, memberId } = options;
  let running = false;
  let again = false;
  const sweep = async (): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    again = false;
    try {
      const owned = shards.owned();
      if (owned.size === 0) return;
      const { rows } = await pool.query(
        `SELECT t.id, t.run_id, r.shard FROM coordinator.tasks t JOIN coordinator.runs r ON r.id = t.run_id
         WHERE t.status = 'assigned' AND t.lease_expires_at < now() AND r.shard = ANY($1) LIMIT 50`,
        [[...owned.keys()]],
      );
      for (const expired of rows) {
        await inTransaction(pool, async (client) => {
          await fenceShard(client, expired.shard, owned.get(expired.shard)!, memberId);
          const ended = await expireLease(client, boss, expired.id, expired.run_id);
          if (ended) log.warn("task lease expired", { run_id: ended.run_id, job: ended.job, agent_id: ended.agent_id, attempt: ended.attempt });
        });
      }
      // Jobs that waited for approval past their approval's timeout.
      const { rows: unapproved } = await pool.query(
        `SELECT j.run_id, j.name, r.shard FROM coordinator.jobs j JOIN coordinator.runs r ON r.id = j.run_id
         WHERE j.waiting_until < now() AND j.state = $2 AND r.shard = ANY($1) LIMIT 50`,
        [[...owned.keys()], RunState.WAITING],
      );
      for (const job of unapproved) {
        await inTransaction(pool, async (client) => {
          await fenceShard(client, job.shard, owned.get(job.shard)!, memberId);
          if (await expireApproval(client, job.run_id, job.name)) log.info("approval timed out", { run_id: job.run_id, job: job.name });
        });
      }
      for (const run of await runsWhoseTurnCame(pool, [...owned.keys()])) {
        await inTransaction(pool, async (client) => {
          await fenceShard(client, run.shard, owned.get(run.shard)!, memberId);
          await advanceRun(client, run.id);
        });
      }
    } catch (err) {
      if (!(err instanceof FencedError)) log.error("task sweep failed", { err });
    } finally {
      running = false;
      if (again) void sweep();
    }
  };
  const timer = setInterval(sweep, options.intervalMs);
  const unlisten = options.notifier.on(groupsChannel, () => void sweep());
  return {
    stop: () => {
      clearInterval(timer);
      unlisten();
    },
  };
}
