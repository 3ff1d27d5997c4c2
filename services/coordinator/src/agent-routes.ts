import { setTimeout as delay } from "node:timers/promises";
import { create, fromJson } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import type { PgBoss } from "pg-boss";
import { contextFromTraceParent, traceParentOf, tracer } from "../../kit/src/telemetry.ts";
import { AgentService, TaskSchema, type StepReport, type Task } from "../../../gen/otto/v1/agent_service_pb.ts";
import { PipelineJobSchema } from "../../../gen/otto/v1/pipeline_pb.ts";
import { inTransaction, type Pool } from "../../kit/src/db.ts";
import type { Notifier } from "../../kit/src/notifier.ts";
import { ClaimWaiters } from "./claim-waiters.ts";
import { appendJournal } from "./journal.ts";
import {
  applyStepChanges,
  claimTask,
  finishTask,
  handBackTask,
  lockCurrentAttempt,
  refuseOthersTask,
  type ClaimedTask,
  type StepChange,
} from "./task-lifecycle.ts";
import { ConcurrencyLimit } from "../../kit/src/limiter.ts";
import { draining } from "../../kit/src/shutdown.ts";
import { stoppingError } from "./run-routes.ts";
import { Histogram, metrics } from "../../kit/src/metrics.ts";
import { callerOf } from "../../kit/src/caller.ts";
import type { TaskClaims } from "../../kit/src/task-token.ts";
import { taskTokenLifetimeSeconds } from "./task-token-lifetime.ts";
import type { SecretStore } from "./secret-store.ts";
import type { TokenStore } from "../../kit/src/token-store.ts";

export type TaskTokenSigner = (claims: TaskClaims, ttlSeconds: number) => string;

const maxWaitMs = 30_000;

const reservationWait = new Histogram({
  name: "otto_reservation_wait_seconds",
  help: "Time a ready job waited until its agent slot, resources and locks were all reserved",
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers: [metrics],
});

export interface AgentServiceOptions {
  taskLeaseMs: number;
  maxWaiters: number;
  // Without TLS there are no task tokens.
  signTaskToken: TaskTokenSigner | undefined;
  secrets: SecretStore;
  tokens: TokenStore;
}

export function agentServiceImpl(
  pool: Pool,
  boss: PgBoss,
  notifier: Notifier,
  { taskLeaseMs, maxWaiters, signTaskToken, secrets, tokens }: AgentServiceOptions,
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
      let tried: Set<string> | undefined;
      for (;;) {
        // A caller that has gone must not be given a task it cannot receive,
        // nor one whose credential was revoked while it waited.
        if (ctx.signal.aborted) return {};
        if (!(await stillTrusted(ctx))) {
          // A wake-up it was given goes on to another agent.
          if (tried) claimWaiters.passOn(tried.add(claimant.id));
          throw new ConnectError("this agent's credential was revoked", Code.Unauthenticated);
        }
        const claimStart = Date.now();
        const { task, contended } = await inTransaction(pool, (client) => claimTask(client, claimant, taskLeaseMs));
        if (task) {
          claimWaiters.wakeOne();
          if (task.waited !== undefined) reservationWait.observe(task.waited);
          return { task: await taskSpec(pool, task, taskLeaseMs, claimant.id, claimStart, signTaskToken, secrets) };
        }
        if (tried) claimWaiters.passOn(tried.add(claimant.id));
        if (draining.aborted) throw stoppingError();
        if (Date.now() >= deadline || ctx.signal.aborted) return {};
        if (contended) {
          tried = undefined;
          await delay(10 + Math.random() * 20);
        } else {
          tried = await claimWaiters.wait(claimant.id, Math.max(0, deadline - Date.now()), AbortSignal.any([ctx.signal, draining]));
        }
      }
    }),
    async heartbeatTask(req, ctx) {
      requireSelf(ctx, req.agentId);
      const { rows } = await pool.query(
        `WITH task AS (
           UPDATE coordinator.tasks SET lease_expires_at = now() + make_interval(secs => $4::float / 1000)
           WHERE id = $1 AND attempt = $2 AND agent_id = $3 AND status = 'assigned' RETURNING id, cancel_requested
         ), held AS (
           UPDATE coordinator.reservations r SET lease_expires_at = now() + make_interval(secs => $4::float / 1000)
           FROM task WHERE r.task_id = task.id
         )
         SELECT cancel_requested FROM task`,
        [req.taskId, req.attempt, req.agentId, taskLeaseMs],
      );
      if (rows.length === 0) {
        const { rows: current } = await pool.query("SELECT attempt, agent_id FROM coordinator.tasks WHERE id = $1", [req.taskId]);
        if (current.length === 0) throw new ConnectError(`task ${req.taskId} not found`, Code.NotFound);
        refuseOthersTask(req.taskId, current[0], req.attempt, req.agentId);
        throw new ConnectError(`attempt ${req.attempt} of task ${req.taskId} is not current for agent ${req.agentId}`, Code.FailedPrecondition);
      }
      return { cancel: rows[0].cancel_requested };
    },
    async reportSteps(req, ctx) {
      const changes = stepChanges(req.steps);
      const cancel = await inTransaction(pool, async (client) => {
        const task = await lockCurrentAttempt(client, { taskId: req.taskId, attempt: req.attempt, caller: callingAgent(ctx) });
        await appendJournal(client, task.run_id, ...(await applyStepChanges(client, task, changes)));
        return task.cancel_requested;
      });
      return { cancel };
    },
    async handBackTask(req, ctx) {
      requireSelf(ctx, req.agentId);
      await inTransaction(pool, async (client) => {
        const task = await lockCurrentAttempt(client, { taskId: req.taskId, attempt: req.attempt, agentId: req.agentId, caller: req.agentId });
        await handBackTask(client, task, req.agentId, boss);
      });
      return {};
    },
    async completeTask(req, ctx) {
      const changes = stepChanges(req.steps);
      await inTransaction(pool, async (client) => {
        const task = await lockCurrentAttempt(client, { taskId: req.taskId, attempt: req.attempt, caller: callingAgent(ctx) });
        const stepEntries = await applyStepChanges(client, task, changes);
        await finishTask(client, boss, task, req.state, req.message.slice(0, 1000), { earlier: stepEntries });
      });
      return {};
    },
  };
}

// The task as the agent gets it. Its dispatch is a span of the run's trace
// (from the claim on), and the agent's spans are children of that one.
async function taskSpec(
  pool: Pool,
  claimed: ClaimedTask,
  leaseMs: number,
  agentId: string,
  claimStart: number,
  signTaskToken: TaskTokenSigner | undefined,
  secrets: SecretStore,
): Promise<Task> {
  const { rows } = await pool.query(
    `SELECT traceparent,
       jsonb_path_query_first(pipeline, '$.jobs[*] ? (@.name == $name)', jsonb_build_object('name', $2::text)) AS job
     FROM coordinator.runs WHERE id = $1`,
    [claimed.run_id, claimed.job],
  );
  const runContext = contextFromTraceParent(rows[0].traceparent);
  const span = tracer.startSpan(
    `dispatch ${claimed.job}`,
    {
      startTime: claimStart,
      attributes: { "otto.run_id": claimed.run_id, "otto.job": claimed.job, "otto.attempt": claimed.attempt, "otto.agent_id": agentId, "otto.reserved": claimed.reserved ?? "" },
    },
    runContext,
  );
  span.end();
  const job = fromJson(PipelineJobSchema, rows[0].job);
  const revealed = await secrets.reveal(job.secrets);
  return create(TaskSchema, {
    taskId: claimed.id,
    attempt: claimed.attempt,
    runId: claimed.run_id,
    job: claimed.job,
    env: job.env,
    steps: job.steps,
    leaseMs,
    traceparent: traceParentOf(trace.setSpan(runContext, span)),
    taskToken: signTaskToken?.(
      { agentId, runId: claimed.run_id, job: claimed.job, attempt: claimed.attempt },
      // It writes only while the attempt is live (live-attempts.ts), and
      // never for longer than the job may run.
      taskTokenLifetimeSeconds(job.steps),
    ),
    secrets: revealed.values,
    missingSecrets: revealed.missing,
    artifacts: job.artifacts,
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
