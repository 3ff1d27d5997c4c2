import { Code, ConnectError } from "@connectrpc/connect";
import type { PoolClient } from "@otto/kit/db";
import { advanceRun } from "./advance-run.ts";
import type { Change } from "./apply-changes.ts";
import { isFinal } from "./states.ts";

// Cancels a run: its jobs that have not started never will (their waiting
// tasks are withdrawn and they end CANCELED now), agents running its tasks
// hear "cancel" in their next heartbeat, and the run ends CANCELED when its
// last running job has stopped. A finished run is left as is.
export async function cancelRun(client: PoolClient, runId: string, why = "cancel requested"): Promise<void> {
  const { rows } = await client.query("SELECT state, cancel_requested FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  if (rows.length === 0) throw new ConnectError(`run ${runId} not found`, Code.NotFound);
  const run = rows[0];
  if (isFinal(run.state) || run.cancel_requested) return;
  const { rows: tasks } = await client.query(
    `WITH run AS (UPDATE coordinator.runs SET cancel_requested = true WHERE id = $1),
       running AS (UPDATE coordinator.tasks SET cancel_requested = true WHERE run_id = $1 AND status = 'assigned')
     SELECT id, job FROM coordinator.tasks WHERE run_id = $1 AND status = 'pending'`,
    [runId],
  );
  const withdrawn: Change[] = tasks.map((task) => ({ entity: "task", taskId: task.id, job: task.job, from: "pending", to: "done" }));
  // Jobs without a running task end now; so does the run if none is left.
  await advanceRun(client, runId, { runLocked: true, changes: [{ entity: "note", state: run.state, message: why }, ...withdrawn] });
}
