import type { PoolClient } from "@otto/kit/db";
import type { Change } from "./apply-changes.ts";
import type { StepRow } from "./job-steps.ts";
import { shouldRetry, type FailureCause } from "./retry-policy.ts";
import { RunState } from "./states.ts";
import { requeueSteps } from "./step-changes.ts";

export interface AttemptOf {
  id: string;
  run_id: string;
  job: string;
  attempt: number;
}

// Why a failed attempt is tried again, if the job's retry policy covers its
// failure; undefined if it is not.
export async function retryReason(
  client: PoolClient,
  task: AttemptOf,
  steps: StepRow[],
  message: string,
  cause: FailureCause,
): Promise<string | undefined> {
  const { rows } = await client.query(
    `SELECT j.retry_max, j.retry_exit_codes, j.retry_agent_lost, t.handbacks
     FROM coordinator.jobs j JOIN coordinator.tasks t ON t.run_id = j.run_id AND t.job = j.name
     WHERE j.run_id = $1 AND j.name = $2`,
    [task.run_id, task.job],
  );
  const policy = { max: rows[0].retry_max, exitCodes: rows[0].retry_exit_codes, agentLost: rows[0].retry_agent_lost };
  if (policy.max === 0) return undefined;
  if (!cause.agentLost && cause.exitCode === undefined) {
    cause = { ...cause, exitCode: steps.find((step) => step.state === RunState.FAILED)?.exit_code ?? undefined };
  }
  // Attempts handed back by stopping agents are not failures: they do not count.
  const retry = task.attempt - rows[0].handbacks;
  if (!shouldRetry(policy, retry, cause)) return undefined;
  return `attempt ${task.attempt} failed (${message}); retrying as attempt ${task.attempt + 1} (retry ${retry} of ${policy.max})`;
}

// The changes that put a job back in the queue for its next attempt, its
// steps reset; the attempt that ended takes its task token's writes with it.
export function requeueChanges(task: AttemptOf, steps: StepRow[], why: string, options: { handback?: boolean } = {}): Change[] {
  return [
    { entity: "task", taskId: task.id, job: task.job, from: "assigned", to: "pending", handback: options.handback },
    { entity: "job", job: task.job, from: RunState.RUNNING, to: RunState.QUEUED, message: why },
    ...requeueSteps(task.job, steps),
  ];
}
