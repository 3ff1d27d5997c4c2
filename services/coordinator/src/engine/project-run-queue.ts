import type { PgBoss } from "pg-boss";
import type { PoolClient } from "@otto/kit/db";
import { traceParentOf } from "@otto/kit/telemetry";
import { asBossDb } from "./run-queue.ts";

// The pg-boss queue of project runs whose pipeline is still to be read from
// their commit: enqueued in the transaction that makes the run, so the work
// exists exactly when the run does; any coordinator does it.
export const prepareQueue = "prepare-run";
export const prepareChannel = "otto_prepare";

export const prepareQueueOptions = {
  // A read that hangs is stopped long before this; a coordinator that dies
  // holding the job rolls its transaction back and a peer takes it at once.
  expireInSeconds: 15 * 60,
  retryLimit: 4,
  retryDelay: 5,
  retryBackoff: true,
} as const;

export interface PreparePayload {
  runId: string;
  traceparent?: string;
}

export async function enqueuePrepare(boss: PgBoss, client: PoolClient, runId: string): Promise<void> {
  const payload: PreparePayload = { runId, traceparent: traceParentOf() };
  await boss.send(prepareQueue, payload, { db: asBossDb(client), ...prepareQueueOptions });
  await client.query("SELECT pg_notify($1, '')", [prepareChannel]);
}
