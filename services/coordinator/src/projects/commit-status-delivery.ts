import { setTimeout as delay } from "node:timers/promises";
import type { PgBoss } from "pg-boss";
import { inTransaction, type Pool, type PoolClient } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import type { Notifier } from "@otto/kit/notifier";
import { statusChannel } from "../engine/apply-changes.ts";
import { asBossDb } from "../engine/run-queue.ts";
import { maxDescriptionLength, statusRequest, type StatusState } from "../forges/status-request.ts";
import type { ForgeKind } from "../forges/forge-kind.ts";
import { startQueueWorker, type QueuedJob } from "../queue-worker.ts";
import type { SecretStore } from "../secret-store.ts";
import { projectFromRow, repositoryOfProject } from "./project-store.ts";

// Commit statuses reach forges through pg-boss: every status a run owes
// (a row of coordinator.commit_statuses, engine/commit-statuses.ts) becomes
// a job of the commit-status queue, keyed by project, commit and context.
// The queue's key_strict_fifo policy runs one job per key at a time, in the
// order they were made, and a job sends the oldest status of its key not yet
// sent: a late `pending` never lands after `success`. A forge that refuses is
// tried again with back-off for about an hour; then the status is given up
// (and the next one goes). A coordinator that dies midway rolls its
// transaction back and a peer takes the job at once.
export const statusQueue = "commit-status";
// The relay has queued statuses: the delivery loops look at once.
export const statusJobsChannel = "otto_status_jobs";

export function statusQueueOptions(retryDelaySeconds: number) {
  return {
    policy: "key_strict_fifo",
    retryLimit: 12,
    retryDelay: retryDelaySeconds,
    retryBackoff: true,
    retryDelayMax: 600,
    expireInSeconds: 300,
  } as const;
}

interface StatusKey {
  project: string;
  sha: string;
  context: string;
}

const sendTimeoutMs = 10_000;

export function startCommitStatusDelivery(options: {
  pool: Pool;
  boss: PgBoss;
  notifier: Notifier;
  log: Logger;
  secrets: SecretStore;
  // Where people reach Otto: the base of the link each status carries.
  publicUrl: () => Promise<string>;
}): { stop(): Promise<void> } {
  const { pool, boss, notifier, log } = options;
  const stopping = new AbortController();

  // The outbox's rows become pg-boss jobs, in the order they were written.
  const relayOnce = () =>
    inTransaction(pool, async (client) => {
      const { rows } = await client.query(
        `SELECT id, project, sha, context FROM coordinator.commit_statuses WHERE queued_at IS NULL ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED`,
      );
      for (const row of rows) {
        const key: StatusKey = { project: row.project, sha: row.sha, context: row.context };
        await boss.send(statusQueue, key, { db: asBossDb(client), singletonKey: `${row.project}\n${row.sha}\n${row.context}` });
      }
      if (rows.length > 0) {
        await client.query("UPDATE coordinator.commit_statuses SET queued_at = now() WHERE id = ANY($1)", [rows.map((r) => r.id)]);
        await client.query("SELECT pg_notify($1, '')", [statusJobsChannel]);
      }
      return rows.length;
    });
  const relay = (async () => {
    while (!stopping.signal.aborted) {
      try {
        if ((await relayOnce()) > 0) continue;
        await notifier.wait(statusChannel, () => true, 2_000, stopping.signal);
      } catch (err) {
        if (stopping.signal.aborted) break;
        log.error("queueing commit statuses failed; will retry", { err });
        await delay(500, undefined, { signal: stopping.signal }).catch(() => {});
      }
    }
  })();

  const delivery = startQueueWorker<StatusKey>({
    ...options,
    queue: statusQueue,
    channel: statusJobsChannel,
    concurrency: 1,
    handle: async (job, client) => {
      const status = await oldestUnsent(client, job);
      if (!status) return;
      const project = (await client.query("SELECT * FROM coordinator.projects WHERE name = $1", [status.project])).rows[0];
      if (!project || !project.forge_kind || !project.forge_token_secret) {
        return markGivenUp(client, status.id, "the project no longer has a forge and token to send statuses with");
      }
      const settings = projectFromRow(project);
      const { values } = await options.secrets.reveal([settings.forge.tokenSecret]);
      const token = values[settings.forge.tokenSecret];
      if (!token) throw new Error(`the forge token secret ${settings.forge.tokenSecret} is not set`);
      const request = statusRequest(settings.forge.kind as ForgeKind, settings.forge.apiUrl, repositoryOfProject(settings), status.sha, {
        state: status.state as StatusState,
        context: status.context,
        description: status.description.slice(0, maxDescriptionLength),
        targetUrl: runUrl(await options.publicUrl(), status.run_id),
      }, token);
      const response = await fetch(request.url, { method: request.method, headers: request.headers, body: request.body, signal: AbortSignal.timeout(sendTimeoutMs) });
      const answer = await response.text().catch(() => "");
      if (!response.ok) throw new Error(`${settings.forge.kind} answered HTTP ${response.status} to the ${status.state} status of ${status.sha.slice(0, 12)}: ${answer.slice(0, 200)}`);
      await client.query("UPDATE coordinator.commit_statuses SET sent_at = now(), last_error = '' WHERE id = $1", [status.id]);
    },
    giveUp: async (job, client, err) => {
      const status = await oldestUnsent(client, job);
      if (status) await markGivenUp(client, status.id, (err as Error).message);
    },
  });

  return {
    async stop() {
      stopping.abort();
      await relay;
      await delivery.stop();
    },
  };
}

async function oldestUnsent(client: PoolClient, job: QueuedJob<StatusKey>) {
  // A row that another job of the key sent while this one waited for its
  // lock drops out of the answer without the next one taking its place:
  // asking again finds that one.
  return (await oldestUnsentOnce(client, job)) ?? (await oldestUnsentOnce(client, job));
}

async function oldestUnsentOnce(client: PoolClient, job: QueuedJob<StatusKey>) {
  const { project, sha, context } = job.data ?? ({} as StatusKey);
  const { rows } = await client.query(
    `SELECT id, run_id, project, sha, context, state, description FROM coordinator.commit_statuses
     WHERE project = $1 AND sha = $2 AND context = $3 AND sent_at IS NULL AND abandoned_at IS NULL ORDER BY id LIMIT 1 FOR UPDATE`,
    [String(project), String(sha), String(context)],
  );
  return rows[0] as { id: string; run_id: string; project: string; sha: string; context: string; state: string; description: string } | undefined;
}

async function markGivenUp(client: PoolClient, id: string, why: string): Promise<void> {
  await client.query("UPDATE coordinator.commit_statuses SET abandoned_at = now(), last_error = $2 WHERE id = $1", [id, why]);
}

// The run as a person sees it: its page in the web UI.
export function runUrl(publicUrl: string, runId: string): string {
  if (!publicUrl) return "";
  return `${publicUrl.replace(/\/+$/, "")}/runs/${encodeURIComponent(runId)}`;
}
