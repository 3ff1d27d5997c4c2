import type { PoolClient } from "@otto/kit/db";
import { applyChanges } from "./apply-changes.ts";
import { RunState } from "./states.ts";

// Fails a project's run that never got its jobs: its pipeline file is
// missing or invalid at its commit, or could not be read. The run's message
// says why (the parser's file:line:col problems). A run no longer waiting
// for its pipeline is left as it is.
export async function failUnpreparedRun(client: PoolClient, runId: string, message: string): Promise<"failed" | "not waiting"> {
  const { rows } = await client.query(
    `SELECT r.state, r.cancel_requested, EXISTS (SELECT 1 FROM coordinator.jobs j WHERE j.run_id = r.id) AS has_jobs
     FROM coordinator.runs r WHERE r.id = $1 FOR UPDATE`,
    [runId],
  );
  const run = rows[0];
  if (!run || run.state !== RunState.QUEUED || run.cancel_requested || run.has_jobs) return "not waiting";
  await applyChanges(client, runId, [{ entity: "run", from: RunState.QUEUED, to: RunState.FAILED, message }]);
  return "failed";
}
