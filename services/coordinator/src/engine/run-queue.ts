import type { PgBoss } from "pg-boss";
import type { PoolClient } from "@otto/kit/db";
import { shardCount, shardOf } from "../shards.ts";
import { traceParentOf } from "@otto/kit/telemetry";

// pg-boss queues of "advance run R" work, one per shard, so that only the
// shard's owner does a run's work. Enqueued inside the transaction that made
// advancing necessary, so the work exists exactly when the change does.
export const advanceChannel = "otto_advance";

export function advanceQueue(shard: number): string {
  return `advance-${String(shard).padStart(2, "0")}`;
}

export const advanceQueues = Array.from({ length: shardCount }, (_, shard) => advanceQueue(shard));

export interface AdvancePayload {
  runId: string;
  // W3C trace context of the work that asked for the advance.
  traceparent?: string;
}

export function asBossDb(client: PoolClient) {
  return { executeSql: (text: string, values?: unknown[]) => client.query(text, values as any[]) };
}

export async function enqueueAdvance(boss: PgBoss, client: PoolClient, runId: string): Promise<void> {
  const shard = shardOf(runId);
  const payload: AdvancePayload = { runId, traceparent: traceParentOf() };
  await boss.send(advanceQueue(shard), payload, { db: asBossDb(client) });
  await client.query("SELECT pg_notify($1, $2)", [advanceChannel, String(shard)]);
}
