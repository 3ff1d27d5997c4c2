import { formatDuration } from "@otto/contracts/duration";
import type { PoolClient } from "@otto/kit/db";
import { advanceRun } from "./advance-run.ts";
import { RunState } from "./states.ts";

// Ends a job that waited for approval longer than its approval's timeout:
// it FAILS, and what needs it is canceled. A job approved, rejected or
// canceled meanwhile is left as it is; the answer says whether it ended.
export async function expireApproval(client: PoolClient, runId: string, job: string): Promise<boolean> {
  await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  const { rows } = await client.query(
    `SELECT approval_timeout_ms FROM coordinator.jobs WHERE run_id = $1 AND name = $2 AND state = $3 AND waiting_until < now()`,
    [runId, job, RunState.WAITING],
  );
  if (!rows[0]) return false;
  const message = `not approved within ${formatDuration(Number(rows[0].approval_timeout_ms) / 1000)}`;
  await advanceRun(client, runId, { runLocked: true, changes: [{ entity: "job", job, from: RunState.WAITING, to: RunState.FAILED, message }] });
  return true;
}
