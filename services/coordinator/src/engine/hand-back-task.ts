import type { PgBoss } from "pg-boss";
import type { PoolClient } from "@otto/kit/db";
import { applyChanges } from "./apply-changes.ts";
import { lockCurrentAttempt } from "./current-attempt.ts";
import { finishAttempt } from "./finish-attempt.ts";
import { jobSteps } from "./job-steps.ts";
import { describeReservations, heldBy } from "./reservations.ts";
import { requeueChanges } from "./retry-task.ts";
import { RunState } from "./states.ts";

// An agent that is stopping gives back a task it will not finish: what it
// held is released and the job waits for its next attempt on another agent.
// Hand-backs do not count against the job's retries.
export async function handBackTask(client: PoolClient, boss: PgBoss, ref: { taskId: string; attempt: number; agentId: string }): Promise<void> {
  const task = await lockCurrentAttempt(client, { ...ref, caller: ref.agentId });
  if (task.cancel_requested) return finishAttempt(client, boss, task, RunState.CANCELED, "canceled");
  const steps = await jobSteps(client, task.run_id, task.job);
  const released = await heldBy(client, task.id);
  const why = `attempt ${task.attempt} handed back by agent ${ref.agentId}, which is stopping (released ${describeReservations(released)}); will run again as attempt ${task.attempt + 1}`;
  await applyChanges(client, task.run_id, requeueChanges(task, steps, why, { handback: true }));
}
