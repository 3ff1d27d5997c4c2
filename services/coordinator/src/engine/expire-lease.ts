import type { PgBoss } from "pg-boss";
import type { PoolClient } from "@otto/kit/db";
import { finishAttempt } from "./finish-attempt.ts";
import { RunState } from "./states.ts";

// Ends an attempt whose agent stopped heartbeating within its lease, so no
// run stays RUNNING forever: a failure of cause "agent lost", retried if the
// job's policy says so. The run advances through its shard's queue. Returns
// what it ended, or undefined if the lease was renewed or the task ended
// meanwhile.
export async function expireLease(client: PoolClient, boss: PgBoss, taskId: string, runId: string) {
  await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  const { rows } = await client.query(
    `SELECT id, run_id, job, attempt, agent_id, cancel_requested FROM coordinator.tasks
     WHERE id = $1 AND status = 'assigned' AND lease_expires_at < now()`,
    [taskId],
  );
  const task = rows[0];
  if (!task) return undefined;
  const state = task.cancel_requested ? RunState.CANCELED : RunState.FAILED;
  const message = `agent ${task.agent_id} lost: no heartbeat for attempt ${task.attempt} within its lease`;
  await finishAttempt(client, boss, task, state, message, { cause: { agentLost: true }, advance: "queued" });
  return task as { run_id: string; job: string; agent_id: string; attempt: number };
}
