import type { PoolClient } from "@otto/kit/db";
import { lockRunWaitingForPipeline } from "./run-waiting-for-pipeline.ts";
import { applyChanges } from "./apply-changes.ts";
import { RunState } from "./states.ts";

// Fails a project's run that never got its jobs: its pipeline file is
// missing or invalid at its commit, or could not be read. The run's message
// says why (the parser's file:line:col problems). A run no longer waiting
// for its pipeline is left as it is.
export async function failUnpreparedRun(client: PoolClient, runId: string, message: string): Promise<"failed" | "not waiting"> {
  if (!(await lockRunWaitingForPipeline(client, runId))) return "not waiting";
  await applyChanges(client, runId, [{ entity: "run", from: RunState.QUEUED, to: RunState.FAILED, message }]);
  return "failed";
}
