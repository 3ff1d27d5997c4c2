import type { PoolClient } from "@otto/kit/db";
import { applyChanges } from "./apply-changes.ts";
import { lockCurrentAttempt } from "./current-attempt.ts";
import { jobSteps } from "./job-steps.ts";
import { stepChanges, type StepReport } from "./step-changes.ts";

// An agent reports its attempt's step changes; the answer says whether the
// run was canceled meanwhile.
export async function reportSteps(
  client: PoolClient,
  ref: { taskId: string; attempt: number; caller?: string },
  reports: StepReport[],
): Promise<{ cancel: boolean }> {
  const task = await lockCurrentAttempt(client, ref);
  if (reports.length > 0) {
    const steps = await jobSteps(client, task.run_id, task.job);
    await applyChanges(client, task.run_id, stepChanges(task.job, steps, reports));
  }
  return { cancel: task.cancel_requested };
}
