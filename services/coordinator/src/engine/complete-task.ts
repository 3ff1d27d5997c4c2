import type { PgBoss } from "pg-boss";
import type { PoolClient } from "../../../kit/src/db.ts";
import { lockCurrentAttempt } from "./current-attempt.ts";
import { finishAttempt } from "./finish-attempt.ts";
import { jobSteps } from "./job-steps.ts";
import type { RunState } from "./states.ts";
import { stepChanges, type StepReport } from "./step-changes.ts";

// An agent ends its attempt in a final state, with its last step reports;
// the run advances in the same transaction.
export async function completeTask(
  client: PoolClient,
  boss: PgBoss,
  ref: { taskId: string; attempt: number; caller?: string },
  outcome: { state: RunState; message: string; steps: StepReport[] },
): Promise<void> {
  const task = await lockCurrentAttempt(client, ref);
  const steps = await jobSteps(client, task.run_id, task.job);
  const earlier = stepChanges(task.job, steps, outcome.steps);
  await finishAttempt(client, boss, task, outcome.state, outcome.message.slice(0, 1000), { earlier, steps });
}
