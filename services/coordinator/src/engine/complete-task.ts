import type { PgBoss } from "pg-boss";
import type { PoolClient } from "@otto/kit/db";
import { lockCurrentAttempt } from "./current-attempt.ts";
import { finishAttempt } from "./finish-attempt.ts";
import { jobStepsColumn, type StepRow } from "./job-steps.ts";
import { runSnapshotColumns, runSnapshotOf } from "./advance-run.ts";
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
  // The job's steps and the run's jobs, in one statement under the lock.
  const { rows } = await client.query(
    `SELECT ${jobStepsColumn("r.id", "$2")} AS steps, ${runSnapshotColumns} FROM coordinator.runs r WHERE r.id = $1`,
    [task.run_id, task.job],
  );
  const steps: StepRow[] = rows[0].steps;
  const earlier = stepChanges(task.job, steps, outcome.steps);
  await finishAttempt(client, boss, task, outcome.state, outcome.message.slice(0, 1000), { earlier, steps, run: runSnapshotOf(rows[0]), last: true });
}
