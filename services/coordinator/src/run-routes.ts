import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import { create, toJsonString } from "@bufbuild/protobuf";
import type { Run } from "@otto/gen/v1/run_pb";
import { JobWaitsSchema, RunService, type JobWaits, type RunsFilter } from "@otto/gen/v1/run_service_pb";
import { draining } from "@otto/kit/shutdown";
import { inTransaction, type Pool } from "@otto/kit/db";
import type { Notifier } from "@otto/kit/notifier";
import { cancelRun } from "./engine/cancel-run.ts";
import { rerunRun } from "./engine/rerun-run.ts";
import { approveJob, rejectJob, type Decision } from "./engine/decide-approval.ts";
import { addJobs } from "./engine/add-jobs.ts";
import { decidedByHeader } from "@otto/kit/decided-by";
import { addingStepHeader, decodeAddingStep } from "@otto/kit/adding-step";
import { journalChannel } from "./engine/apply-changes.ts";
import { startWatching, stopWatching } from "./engine/run-watchers.ts";
import { journalRowToEvent, loadRun, requireRunId } from "./run-store.ts";
import { isFinal } from "./engine/states.ts";
import { submitRun } from "./engine/submit-run.ts";
import { ConcurrencyLimit } from "@otto/kit/limiter";
import { assertValidPipeline } from "./validate-pipeline.ts";
import { explainWaits } from "./waiting-for.ts";
import { followFeed, startCursor } from "./journal-feed.ts";
import { pipelineStatuses } from "./pipeline-statuses.ts";
import { listRuns } from "./list-runs.ts";
import { decodeCursor, type JournalCursor } from "./journal-cursor.ts";
import type { Instance } from "@otto/gen/v1/registry_service_pb";

import type { SecretStore } from "./secret-store.ts";

export interface RunLimits {
  maxActiveRuns: number;
  maxWatchers: number;
}

export function runServiceImpl(
  pool: Pool,
  boss: PgBoss,
  notifier: Notifier,
  limits: RunLimits,
  secrets: SecretStore,
  // The agents alive now, with their labels and slots (the registry's).
  liveAgents: () => Promise<Instance[]> = async () => [],
): ServiceImpl<typeof RunService> {
  const watchers = new ConcurrencyLimit("WatchRun streams", limits.maxWatchers);
  return {
    async submitRun(req) {
      if (req.source.case !== "pipeline") {
        throw new ConnectError("the coordinator takes the pipeline IR; send YAML to the gateway", Code.InvalidArgument);
      }
      const pipeline = req.source.value;
      assertValidPipeline(pipeline);
      await secrets.requireExisting(pipeline.jobs.flatMap((job) => job.secrets));
      const { runId, created } = await submitRun(pool, pipeline, limits.maxActiveRuns, req.requestId);
      return { run: created ?? (await loadRun(pool, runId)) };
    },
    async getRun(req) {
      const run = await loadRun(pool, req.runId);
      await explainWaits(pool, [run], liveAgents);
      return { run };
    },
    listRuns: (req) => listRuns(pool, req),
    async rerunRun(req) {
      requireRunId(req.runId);
      const runId = await inTransaction(pool, (client) => rerunRun(client, boss, { runId: req.runId, failedOnly: req.failedOnly, maxActiveRuns: limits.maxActiveRuns }));
      return { run: await loadRun(pool, runId) };
    },
    async approveJob(req, ctx) {
      requireRunId(req.runId);
      await inTransaction(pool, (client) => approveJob(client, req.runId, req.job, decisionOf(ctx, req.comment)));
      return { run: await loadRun(pool, req.runId) };
    },
    async rejectJob(req, ctx) {
      requireRunId(req.runId);
      await inTransaction(pool, (client) => rejectJob(client, req.runId, req.job, decisionOf(ctx, req.comment)));
      return { run: await loadRun(pool, req.runId) };
    },
    async addJobs(req, ctx) {
      requireRunId(req.runId);
      if (req.source.case !== "jobs") throw new ConnectError("the coordinator takes the jobs as IR; send YAML to the gateway", Code.InvalidArgument);
      const by = decodeAddingStep(ctx.requestHeader.get(addingStepHeader));
      if (!by) throw new ConnectError("AddJobs is a step's: call it through the gateway with the step's token (OTTO_TOKEN)", Code.InvalidArgument);
      const fragment = req.source.value;
      await secrets.requireExisting(fragment.jobs.flatMap((job) => job.secrets));
      const fileName = req.fileName || "jobs.yml";
      const result = await inTransaction(pool, (client) => addJobs(client, { runId: req.runId, fragment, by, fileName }));
      return { ...result, run: await loadRun(pool, req.runId) };
    },
    async cancelRun(req) {
      requireRunId(req.runId);
      await inTransaction(pool, (client) => cancelRun(client, req.runId));
      return { run: await loadRun(pool, req.runId) };
    },
    watchRun(req, ctx) {
      requireRunId(req.runId);
      return watchers.stream(() => watchJournal(pool, notifier, req.runId, req.afterSeq, ctx.signal, req.withWaits ? liveAgents : undefined));
    },
    async listPipelines(req) {
      return { pipelines: await pipelineStatuses(pool, req.name) };
    },
    watchRuns(req, ctx) {
      const after = req.afterCursor ? decodeCursor(req.afterCursor) : undefined;
      return watchers.stream(() => watchEveryJournal(pool, notifier, after, req.fromBeginning, req.filter, ctx.signal));
    },
  };
}

// Why each job of the run that has not started waits.
async function waitsOf(pool: Pool, run: Run, liveAgents: () => Promise<Instance[]>): Promise<JobWaits> {
  await explainWaits(pool, [run], liveAgents);
  return create(JobWaitsSchema, { jobs: run.jobs.filter((job) => job.waitingFor).map((job) => ({ job: job.name, waitingFor: job.waitingFor })) });
}

// Who decided: the gateway, the only caller of these methods, names the
// token it authenticated.
function decisionOf(ctx: HandlerContext, comment: string): Decision {
  return { by: ctx.requestHeader.get(decidedByHeader) || "an unauthenticated caller (Otto runs without TLS)", comment };
}

// The run's journal after `afterSeq`, live, until the event that makes the
// run final; and, given `liveAgents`, why its jobs wait, whenever that changes.
async function* watchJournal(pool: Pool, notifier: Notifier, runId: string, afterSeq: bigint, callerSignal: AbortSignal, liveAgents?: () => Promise<Instance[]>) {
  const signal = AbortSignal.any([callerSignal, draining]);
  await startWatching(pool, runId);
  try {
    yield* followJournal(pool, notifier, runId, afterSeq, signal, liveAgents);
  } finally {
    await stopWatching(pool, runId).catch(() => {});
  }
  if (draining.aborted && !callerSignal.aborted) throw stoppingError();
}

// Every run's journal from `after` (else now, or the beginning), until the
// caller goes or this coordinator stops (the gateway then resumes on a peer).
async function* watchEveryJournal(pool: Pool, notifier: Notifier, after: JournalCursor | undefined, fromBeginning: boolean, filter: RunsFilter | undefined, callerSignal: AbortSignal) {
  const signal = AbortSignal.any([callerSignal, draining]);
  yield* followFeed(pool, notifier, after ?? (await startCursor(pool, fromBeginning)), filter, signal);
  if (draining.aborted && !callerSignal.aborted) throw stoppingError();
}

// How often why jobs wait is looked at again without news of the run: what
// it waits for may change elsewhere (agents, other runs' locks and slots).
const waitsRefreshMs = 2_000;

async function* followJournal(pool: Pool, notifier: Notifier, runId: string, afterSeq: bigint, signal: AbortSignal, liveAgents?: () => Promise<Instance[]>) {
  let after = afterSeq;
  let runExists = false;
  let waitsSent = "";
  while (!signal.aborted) {
    // Take the wake-up before reading, so an append between the read and the
    // wait is not missed.
    const woken = notifier.wait(journalChannel, (id) => id === runId, liveAgents ? waitsRefreshMs : 5_000, signal);
    const { rows } = await pool.query(
      "SELECT * FROM coordinator.journal WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT 500",
      [runId, after],
    );
    for (const row of rows) {
      yield { event: journalRowToEvent(row) };
      after = BigInt(row.seq);
      if (row.job === "" && row.step === "" && isFinal(row.state)) return;
    }
    if (rows.length > 0) {
      runExists = true;
      continue;
    }
    // Caught up: a run that is already final (its final event behind
    // `afterSeq`) ends the stream; and, when asked, why its jobs wait.
    if (runExists && !liveAgents) {
      await woken;
      continue;
    }
    const run = await loadRun(pool, runId);
    runExists = true;
    if (isFinal(run.state)) {
      // Its final event was journaled with its state: read on to it, unless
      // it is behind us already.
      const { rows: more } = await pool.query("SELECT 1 FROM coordinator.journal WHERE run_id = $1 AND seq > $2 LIMIT 1", [runId, after]);
      if (more.length === 0) return;
      continue;
    }
    if (liveAgents) {
      const waits = await waitsOf(pool, run, liveAgents);
      const key = toJsonString(JobWaitsSchema, waits);
      if (key !== waitsSent) {
        waitsSent = key;
        yield { waits };
      }
    }
    await woken;
  }
}

// What a stopping coordinator answers to waits it cuts short: callers that
// retry on unavailable (the gateway, agents) carry on with a peer.
export function stoppingError(): ConnectError {
  return new ConnectError("this coordinator is stopping; try another", Code.Unavailable);
}
