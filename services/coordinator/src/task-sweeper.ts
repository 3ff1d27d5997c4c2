import type { PgBoss } from "pg-boss";
import { inTransaction, type Pool } from "../../kit/src/db.ts";
import type { Logger } from "../../kit/src/log.ts";
import { finishTask } from "./task-lifecycle.ts";
import { fenceShard, FencedError, type ShardManager } from "./shards.ts";
import { RunState } from "./states.ts";

// Ends tasks whose agent stopped heartbeating, so no run stays RUNNING
// forever. Each coordinator sweeps the runs of the shards it owns.
export function startTaskSweeper(options: {
  pool: Pool;
  boss: PgBoss;
  log: Logger;
  shards: ShardManager;
  memberId: string;
  intervalMs: number;
}) {
  const { pool, boss, log, shards, memberId } = options;
  let running = false;
  const sweep = async () => {
    if (running) return;
    running = true;
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
          await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [expired.run_id]);
          const { rows: tasks } = await client.query(
            "SELECT * FROM coordinator.tasks WHERE id = $1 AND status = 'assigned' AND lease_expires_at < now()",
            [expired.id],
          );
          const task = tasks[0];
          if (!task) return;
          const state = task.cancel_requested ? RunState.CANCELED : RunState.FAILED;
          const message = `agent ${task.agent_id} lost: no heartbeat for attempt ${task.attempt} within its lease`;
          log.warn("task lease expired", { run_id: task.run_id, job: task.job, agent_id: task.agent_id });
          await finishTask(client, boss, task, state, message, { cause: { agentLost: true }, advance: "queued" });
        });
      }
    } catch (err) {
      if (!(err instanceof FencedError)) log.error("task sweep failed", { err });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(sweep, options.intervalMs);
  return { stop: () => clearInterval(timer) };
}
