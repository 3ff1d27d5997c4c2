import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import type { PoolClient } from "../../kit/src/db.ts";
import { appendJournal } from "./journal.ts";
import { enqueueAdvance } from "./run-queue.ts";
import { isFinal } from "./states.ts";

// Marks a run canceled: jobs that have not started never will, agents running
// its tasks hear "cancel" in their next heartbeat. A finished run is left as is.
export async function cancelRun(client: PoolClient, boss: PgBoss, runId: string): Promise<void> {
  const { rows } = await client.query("SELECT state, cancel_requested FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  if (rows.length === 0) throw new ConnectError(`run ${runId} not found`, Code.NotFound);
  const run = rows[0];
  if (isFinal(run.state) || run.cancel_requested) return;
  await client.query("UPDATE coordinator.runs SET cancel_requested = true WHERE id = $1", [runId]);
  await client.query("DELETE FROM coordinator.tasks WHERE run_id = $1 AND status = 'pending'", [runId]);
  await client.query("UPDATE coordinator.tasks SET cancel_requested = true WHERE run_id = $1 AND status = 'assigned'", [runId]);
  await appendJournal(client, runId, { state: run.state, message: "cancel requested" });
  await enqueueAdvance(boss, client, runId);
}
