import type { PoolClient } from "@otto/kit/db";
import { advanceRun } from "./advance-run.ts";
import type { Change } from "./apply-changes.ts";
import { jobSteps } from "./job-steps.ts";
import { RunState } from "./states.ts";
import { closeUnfinishedSteps } from "./step-changes.ts";

// Fails a job that no live agent could take for too long (its labels match
// none): its pending task is withdrawn, the job FAILS from QUEUED with
// `message`, and the run advances (what needs it is skipped). A task that
// was taken meanwhile, or is gone, is left alone: false.
export async function failUnmatchedJob(client: PoolClient, runId: string, taskId: string, message: string): Promise<boolean> {
  await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  const { rows } = await client.query(
    `SELECT t.job FROM coordinator.tasks t JOIN coordinator.jobs j ON j.run_id = t.run_id AND j.name = t.job
     WHERE t.id = $1 AND t.run_id = $2 AND t.status = 'pending' AND j.state = $3`,
    [taskId, runId, RunState.QUEUED],
  );
  if (rows.length === 0) return false;
  const job: string = rows[0].job;
  const changes: Change[] = [
    { entity: "task", taskId, job, from: "pending", to: "done" },
    { entity: "job", job, from: RunState.QUEUED, to: RunState.FAILED, message },
    ...closeUnfinishedSteps(job, await jobSteps(client, runId, job), RunState.FAILED),
  ];
  await advanceRun(client, runId, { runLocked: true, changes });
  return true;
}
