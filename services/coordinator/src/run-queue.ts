import type { PgBoss } from "pg-boss";
import type { PoolClient } from "../../kit/src/db.ts";

// pg-boss queue of "advance run R" work. Enqueued inside the transaction that
// made advancing necessary, so the work exists exactly when the change does.
export const advanceQueue = "advance-run";
export const advanceChannel = "otto_advance";

export interface AdvancePayload {
  runId: string;
}

export function asBossDb(client: PoolClient) {
  return { executeSql: (text: string, values?: unknown[]) => client.query(text, values as any[]) };
}

export async function enqueueAdvance(boss: PgBoss, client: PoolClient, runId: string): Promise<void> {
  const payload: AdvancePayload = { runId };
  await boss.send(advanceQueue, payload, { db: asBossDb(client) });
  await client.query("SELECT pg_notify($1, $2)", [advanceChannel, runId]);
}
