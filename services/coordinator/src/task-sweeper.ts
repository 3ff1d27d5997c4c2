import type { PgBoss } from "pg-boss";
import { inTransaction, type Pool } from "../../kit/src/db.ts";
import type { Logger } from "../../kit/src/log.ts";
import { finishTask } from "./task-lifecycle.ts";
import { RunState } from "./states.ts";

// Ends tasks whose agent stopped heartbeating, so no run stays RUNNING forever.
export function startTaskSweeper(options: { pool: Pool; boss: PgBoss; log: Logger; intervalMs: number }) {
  const { pool, boss, log } = options;
  let running = false;
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      const { rows } = await pool.query(
        "SELECT id, run_id FROM coordinator.tasks WHERE status = 'assigned' AND lease_expires_at < now() LIMIT 50",
      );
      for (const expired of rows) {
        await inTransaction(pool, async (client) => {
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
          await finishTask(client, boss, task, state, message);
        });
      }
    } catch (err) {
      log.error("task sweep failed", { err });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(sweep, options.intervalMs);
  return { stop: () => clearInterval(timer) };
}
