import { setTimeout as delay } from "node:timers/promises";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import type { PgBoss } from "pg-boss";
import { contextFromTraceParent, traceParentOf, tracer } from "@otto/kit/telemetry";
import { AgentService, TaskSchema, type StepReport, type Task } from "@otto/gen/v1/agent_service_pb";
import { PipelineJobSchema } from "@otto/gen/v1/pipeline_pb";
import { inTransaction, type Pool } from "@otto/kit/db";
import type { Notifier } from "@otto/kit/notifier";
import { ClaimWaiters, type WakeUp } from "./claim-waiters.ts";
import { anythingToClaim, claimTask, type ClaimedTask } from "./engine/claim-task.ts";
import { completeTask } from "./engine/complete-task.ts";
import { handBackTask } from "./engine/hand-back-task.ts";
import { heartbeatTask } from "./engine/heartbeat-task.ts";
import { reportSteps } from "./engine/report-steps.ts";
import type { StepReport as StepChange } from "./engine/step-changes.ts";
import { ConcurrencyLimit } from "@otto/kit/limiter";
import { draining } from "@otto/kit/shutdown";
import { stoppingError } from "./run-routes.ts";
import { Counter, Histogram, metrics } from "@otto/kit/metrics";
import { callerOf } from "@otto/kit/caller";
import type { TaskClaims } from "@otto/kit/task-token";
import type { StepClaims } from "@otto/kit/step-token";
import { jobTimeoutSeconds, taskTokenLifetimeSeconds } from "./task-token-lifetime.ts";
import type { SecretStore } from "./secret-store.ts";
import type { TokenStore } from "@otto/kit/token-store";

export type TaskTokenSigner = (claims: TaskClaims, ttlSeconds: number) => string;
export type StepTokenSigner = (claims: StepClaims, ttlSeconds: number) => string;

const maxWaitMs = 30_000;

const reservationWait = new Histogram({
  name: "otto_reservation_wait_seconds",
  help: "Time a ready job waited until its agent slot, resources and locks were all reserved",
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers: [metrics],
});

const claims = new Counter({
  name: "otto_claims_total",
  help: "Claim transactions for agents' AcquireTask calls, by whether they found a task",
  labelNames: ["outcome"],
  registers: [metrics],
});

export interface AgentServiceOptions {
  taskLeaseMs: number;
  maxWaiters: number;
  // Without TLS there are no task tokens.
  signTaskToken: TaskTokenSigner | undefined;
  // The steps' token (unsigned without TLS).
  signStepToken: StepTokenSigner;
  secrets: SecretStore;
  tokens: TokenStore;
  // OTTO_MAX_JOB_DURATION: no job's steps run longer together.
  maxJobSeconds: number;
}

export function agentServiceImpl(
  pool: Pool,
  boss: PgBoss,
  notifier: Notifier,
  { taskLeaseMs, maxWaiters, signTaskToken, signStepToken, secrets, tokens, maxJobSeconds }: AgentServiceOptions,
): ServiceImpl<typeof AgentService> {
  const stillTrusted = async (ctx: HandlerContext) => {
    const caller = callerOf(ctx);
    return caller.kind !== "agent" || (await tokens.isLiveId(caller.tokenId));
  };
  const waiters = new ConcurrencyLimit("AcquireTask long polls", maxWaiters);
  const claimWaiters = new ClaimWaiters(notifier);
  return {
    acquireTask: (req, ctx) => waiters.run(async () => {
      requireSelf(ctx, req.agentId);
      const deadline = Date.now() + Math.min(Math.max(req.waitMs, 0), maxWaitMs);
      const claimant = {
        id: req.agentId,
        labels: req.labels,
        slots: req.slots,
        cpu: req.cpu,
        memoryBytes: req.memoryBytes,
        runningTaskIds: req.runningTaskIds,
        slot: req.slot,
        incarnation: req.incarnation,
      };
      // Each wake-up carries the agents that already looked for this news
      // and found nothing, so it goes on only to agents that might fit.
      let news: WakeUp | undefined;
      for (;;) {
        // A caller that has gone must not be given a task it cannot receive,
        // nor one whose credential was revoked while it waited.
        if (ctx.signal.aborted) return {};
        if (!(await stillTrusted(ctx))) {
          // A wake-up it was given goes on to another agent.
          if (news) claimWaiters.passOn({ ...news, tried: news.tried.add(claimant.id) });
          throw new ConnectError("this agent's credential was revoked", Code.Unauthenticated);
        }
        const claimStart = Date.now();
        // A poll that was not woken first looks whether a claim could find
        // anything (a task made before it began waits for it, not news).
        const worthClaiming = news !== undefined || (await anythingToClaim(pool, claimant));
        const { task, contended } = worthClaiming
          ? await inTransaction(pool, (client) => claimTask(client, claimant, taskLeaseMs))
          : { task: undefined, contended: false };
        if (worthClaiming) claims.inc({ outcome: task ? "claimed" : "empty" });
        if (task) {
          // One wake-up may stand for several tasks: the next waiting poll
          // looks for the rest, if there is any.
          if (task.more !== false) claimWaiters.wakeOne();
          if (task.waited !== undefined) reservationWait.observe(task.waited);
          return { task: await taskSpec(task, taskLeaseMs, claimant.id, claimStart, { signTaskToken, signStepToken }, secrets, maxJobSeconds) };
        }
        if (news) claimWaiters.passOn({ ...news, tried: news.tried.add(claimant.id) });
        if (draining.aborted) throw stoppingError();
        if (Date.now() >= deadline || ctx.signal.aborted) return {};
        if (contended) {
          news = undefined;
          await delay(10 + Math.random() * 20);
        } else {
          news = await claimWaiters.wait(claimant.id, claimant.labels, Math.max(0, deadline - Date.now()), AbortSignal.any([ctx.signal, draining]));
        }
      }
    }),
    async heartbeatTask(req, ctx) {
      requireSelf(ctx, req.agentId);
      return heartbeatTask(pool, { taskId: req.taskId, attempt: req.attempt, agentId: req.agentId }, taskLeaseMs);
    },
    async reportSteps(req, ctx) {
      const reports = stepChanges(req.steps);
      return inTransaction(pool, (client) => reportSteps(client, { taskId: req.taskId, attempt: req.attempt, caller: callingAgent(ctx) }, reports));
    },
    async handBackTask(req, ctx) {
      requireSelf(ctx, req.agentId);
      await inTransaction(pool, (client) => handBackTask(client, boss, { taskId: req.taskId, attempt: req.attempt, agentId: req.agentId }));
      return {};
    },
    async completeTask(req, ctx) {
      const reports = stepChanges(req.steps);
      const outcome = { state: req.state, message: req.message, steps: reports };
      await inTransaction(pool, (client) => completeTask(client, boss, { taskId: req.taskId, attempt: req.attempt, caller: callingAgent(ctx) }, outcome));
      return {};
    },
  };
}
// The task as the agent gets it. Its dispatch is a span of the run's trace
// (from the claim on), and the agent's spans are children of that one.
async function taskSpec(
  claimed: ClaimedTask,
  leaseMs: number,
  agentId: string,
  claimStart: number,
  signers: { signTaskToken: TaskTokenSigner | undefined; signStepToken: StepTokenSigner },
  secrets: SecretStore,
  maxJobSeconds: number,
): Promise<Task> {
  const runContext = contextFromTraceParent(claimed.traceparent);
  const span = tracer.startSpan(
    `dispatch ${claimed.job}`,
    {
      startTime: claimStart,
      attributes: { "otto.run_id": claimed.run_id, "otto.job": claimed.job, "otto.attempt": claimed.attempt, "otto.agent_id": agentId, "otto.reserved": claimed.reserved ?? "" },
    },
    runContext,
  );
  span.end();
  const job = fromJson(PipelineJobSchema, claimed.spec as JsonValue);
  const revealed = await secrets.reveal(job.secrets);
  const timeoutSeconds = jobTimeoutSeconds(job.timeout, maxJobSeconds);
  // Either token does something only while the attempt is live
  // (live-attempts.ts, add-jobs.ts), and never for longer than the job may run.
  const tokenSeconds = taskTokenLifetimeSeconds(job.steps, timeoutSeconds);
  const attempt = { runId: claimed.run_id, job: claimed.job, attempt: claimed.attempt };
  return create(TaskSchema, {
    taskId: claimed.id,
    attempt: claimed.attempt,
    runId: claimed.run_id,
    job: claimed.job,
    env: job.env,
    steps: job.steps,
    leaseMs,
    traceparent: traceParentOf(trace.setSpan(runContext, span)),
    taskToken: signers.signTaskToken?.({ agentId, ...attempt, artifactSources: claimed.artifact_sources }, tokenSeconds),
    stepToken: signers.signStepToken(attempt, tokenSeconds),
    secrets: revealed.values,
    missingSecrets: revealed.missing,
    artifacts: job.artifacts,
    artifactSources: claimed.artifact_sources,
    jobTimeout: { seconds: BigInt(Math.floor(timeoutSeconds)), nanos: Math.round((timeoutSeconds % 1) * 1e9) },
  });
}

// States and indexes are bounded by the requests' protovalidate rules.
function stepChanges(reports: StepReport[]): StepChange[] {
  return reports.map((report) => ({
    stepIndex: report.stepIndex,
    state: report.state,
    exitCode: report.exitCode,
    atMs: report.at ? Number(report.at.seconds) * 1000 + report.at.nanos / 1e6 : undefined,
  }));
}

// The agent an agent credential stands for (undefined without TLS).
function callingAgent(ctx: HandlerContext): string | undefined {
  const caller = callerOf(ctx);
  return caller.kind === "agent" ? caller.agentId : undefined;
}

function requireSelf(ctx: HandlerContext, agentId: string) {
  const caller = callingAgent(ctx);
  if (caller !== undefined && caller !== agentId) {
    throw new ConnectError(`this credential belongs to agent ${caller}, not ${agentId}`, Code.PermissionDenied);
  }
}
