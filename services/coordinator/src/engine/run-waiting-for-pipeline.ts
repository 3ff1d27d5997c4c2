import type { PoolClient } from "@otto/kit/db";
import { RunState } from "./states.ts";

// Locks a project's run and says whether it still waits for the pipeline of
// its commit: QUEUED, not canceled, without jobs (start-project-run.ts).
export async function lockRunWaitingForPipeline(client: PoolClient, runId: string): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT r.state, r.cancel_requested, EXISTS (SELECT 1 FROM coordinator.jobs j WHERE j.run_id = r.id) AS has_jobs
     FROM coordinator.runs r WHERE r.id = $1 FOR UPDATE`,
    [runId],
  );
  const run = rows[0];
  return Boolean(run && run.state === RunState.QUEUED && !run.cancel_requested && !run.has_jobs);
}
