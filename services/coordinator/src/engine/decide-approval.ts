import { Code, ConnectError } from "@connectrpc/connect";
import { runStateName } from "@otto/contracts/run-state";
import type { PoolClient } from "@otto/kit/db";
import { advanceRun } from "./advance-run.ts";
import type { Change } from "./apply-changes.ts";
import { RunState } from "./states.ts";

export interface Decision {
  // Who decided, as the journal names them (the API token's name and id).
  by: string;
  comment: string;
}

// A person's answer to a job waiting for approval: approved, it goes back
// to QUEUED as approved and gets its task in the same advance; rejected,
// it FAILS and what needs it is canceled. A job that is not waiting is
// refused, naming its state.
export function approveJob(client: PoolClient, runId: string, job: string, decision: Decision): Promise<void> {
  return decide(client, runId, job, decision, true);
}

export function rejectJob(client: PoolClient, runId: string, job: string, decision: Decision): Promise<void> {
  return decide(client, runId, job, decision, false);
}

async function decide(client: PoolClient, runId: string, job: string, decision: Decision, approve: boolean): Promise<void> {
  const { rows: run } = await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  if (run.length === 0) throw new ConnectError(`run ${runId} not found`, Code.NotFound);
  const { rows } = await client.query("SELECT state FROM coordinator.jobs WHERE run_id = $1 AND name = $2", [runId, job]);
  if (rows.length === 0) throw new ConnectError(`run ${runId} has no job ${job}`, Code.NotFound);
  if (rows[0].state !== RunState.WAITING) {
    throw new ConnectError(`job ${job} is ${runStateName(rows[0].state)}, not waiting for approval`, Code.FailedPrecondition);
  }
  const why = `${approve ? "approved" : "rejected"} by ${decision.by}${decision.comment ? `: ${decision.comment}` : ""}`;
  if (approve) await client.query("UPDATE coordinator.jobs SET approved_by = $3 WHERE run_id = $1 AND name = $2", [runId, job, decision.by]);
  const change: Change = { entity: "job", job, from: RunState.WAITING, to: approve ? RunState.QUEUED : RunState.FAILED, message: why };
  await advanceRun(client, runId, { runLocked: true, changes: [change] });
}
