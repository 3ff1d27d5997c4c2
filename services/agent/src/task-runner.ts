import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import { SpanStatusCode, type Span } from "@opentelemetry/api";
import { contextFromTraceParent, inSpan } from "@otto/kit/telemetry";
import { Histogram, metrics } from "@otto/kit/metrics";
import { AgentService, type Task } from "@otto/gen/v1/agent_service_pb";
import { LogStoreService } from "@otto/gen/v1/log_store_service_pb";
import { ArtifactStoreService, type ArtifactSource } from "@otto/gen/v1/artifact_service_pb";
import { RunState } from "@otto/gen/v1/run_pb";
import type { Logger } from "@otto/kit/log";
import { runStateName } from "@otto/contracts/run-state";
import { formatDuration } from "@otto/contracts/duration";
import type { ServiceCaller } from "@otto/kit/service-caller";
import { createSecretMasker, type SecretMasker } from "./secret-masker.ts";
import type { OnText } from "./output-text.ts";
import { uploadArtifacts } from "./artifact-upload.ts";
import { ArtifactDownloadError, downloadNeededArtifacts, type FileOwner } from "./artifact-download.ts";
import { LogSink } from "./log-sink.ts";
import { StepReporter, type StepChange } from "./step-reporter.ts";
import { runStepProcess, type StepOutcome } from "./step-process.ts";
import { makeJobDirectory, removeJobDirectory, type JobDirectory, type SandboxSettings } from "./step-sandbox.ts";
import { stepAccessEnv, type StepAccess } from "./step-credential.ts";

export interface TaskRunnerOptions {
  agentId: string;
  workRoot: string;
  peers: ServiceCaller;
  log: Logger;
  // Aborted when the agent stops without finishing: the running step is
  // stopped and the task handed back for a new attempt elsewhere.
  handBack?: AbortSignal;
  // How long step changes are gathered before a ReportSteps call.
  reportGatherMs?: number;
  // How steps are confined; absent when OTTO_AGENT_SANDBOX=off.
  sandbox?: SandboxSettings;
  // The agent's slot running the task: its job directory is the slot's.
  slot?: number;
  // How steps reach Otto with their step token (step-credential.ts).
  stepAccess?: StepAccess;
}

const stepDuration = new Histogram({
  name: "otto_step_duration_seconds",
  help: "Wall time of each step's process, by the state it ended in",
  labelNames: ["state"],
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
  registers: [metrics],
});

// What a step gets of the agent's own environment: unsandboxed, where to find
// programs and its home; either way, its language and time zone.
const passThroughEnv = ["LANG", "LC_ALL", "TZ"];
const passThroughUnsandboxed = ["PATH", "HOME", "USER", "TMPDIR"];

// Runs one task: each step in turn in a fresh workspace, heartbeating the
// task, streaming the log, and reporting every step and the outcome.
export function runTask(task: Task, options: TaskRunnerOptions): Promise<void> {
  const attributes = { "otto.run_id": task.runId, "otto.job": task.job, "otto.attempt": task.attempt, "otto.agent_id": options.agentId };
  return inSpan(`job ${task.job}`, attributes, (span) => runTaskInSpan(task, options, span), contextFromTraceParent(task.traceparent));
}

async function runTaskInSpan(task: Task, options: TaskRunnerOptions, jobSpan: Span): Promise<void> {
  const { peers, agentId } = options;
  const log = options.log.child({ run_id: task.runId, job: task.job, attempt: task.attempt });
  // Every call the agent makes about its task may be repeated safely (steps
  // only move forward, completion is fenced by attempt), so it keeps trying
  // through coordinator restarts for longer than the lease: by then the
  // coordinator has either answered or taken the task away (and says so).
  const retryForMs = Math.max(10_000, task.leaseMs * 2);
  const coordinator = <T>(call: (c: import("@connectrpc/connect").Client<typeof AgentService>) => Promise<T>) =>
    peers.call("coordinator", AgentService, call, { idempotent: true, retryForMs });
  const ref = { taskId: task.taskId, attempt: task.attempt };
  const cancel = new AbortController();
  let lost = false;
  let handingBack = false;
  const onHandBack = () => {
    handingBack = true;
    cancel.abort();
  };
  options.handBack?.addEventListener("abort", onHandBack, { once: true });
  if (options.handBack?.aborted) onHandBack();
  // The job's own timeout (at most the coordinator's longest job): past it
  // the running step is stopped and the job fails.
  const jobTimeoutMs = task.jobTimeout ? Number(task.jobTimeout.seconds) * 1000 + task.jobTimeout.nanos / 1e6 : 0;
  let timedOut = false;
  const jobTimer =
    jobTimeoutMs > 0
      ? setTimeout(() => {
          timedOut = true;
          cancel.abort();
        }, jobTimeoutMs)
      : undefined;

  // The task stays this agent's until the coordinator has its outcome: the
  // heartbeat goes on through the log's close and until CompleteTask (or
  // HandBackTask) is answered, however long those take.
  let settled = false;
  const beatMs = Math.max(200, Math.min(1_000, task.leaseMs / 4));
  const heartbeat = setInterval(async () => {
    try {
      // A beat that a stalled coordinator holds moves on to another one
      // within the lease (beats go on meanwhile, each to any coordinator).
      const answer = await coordinator((c) => c.heartbeatTask({ ...ref, agentId }, { timeoutMs: Math.max(1_000, task.leaseMs / 2) }));
      if (answer.cancel && !settled) cancel.abort();
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.FailedPrecondition && !settled) {
        log.warn("task taken away by the coordinator; stopping it", { err });
        lost = true;
        cancel.abort();
      }
    }
  }, beatMs);
  const stopHeartbeat = () => {
    settled = true;
    clearInterval(heartbeat);
  };

  // The objects service takes this attempt's log only with its task token.
  const asTask = task.taskToken ? { headers: { authorization: `Bearer ${task.taskToken}` } } : {};
  const sink = new LogSink(({ seq, zstd, segments, continuesLine }) =>
    peers
      .call(
        "objects",
        LogStoreService,
        (c) => c.appendLog({ runId: task.runId, job: task.job, attempt: task.attempt, seq: BigInt(seq), zstd, segments, continuesLine }, asTask),
        { idempotent: true, retryForMs },
      )
      .then(() => {}),
  );
  const reporter = new StepReporter(async (steps) => {
    const answer = await coordinator((c) => c.reportSteps({ ...ref, steps }));
    if (answer.cancel) cancel.abort();
  }, options.reportGatherMs ?? 0);
  // Every line the job's log gets, with the job's secret values masked.
  // The step token too: a reader of the log must not add jobs with it.
  const mask = createSecretMasker([...Object.values(task.secrets), task.stepToken].filter(Boolean));
  const logLine = (step: string, text: string) => sink.line(mask(step), mask(text));
  const takenAway = (err: unknown) => err instanceof ConnectError && err.code === Code.FailedPrecondition;
  let jobDirectory: JobDirectory | undefined;
  let state: RunState = RunState.SUCCEEDED;
  let message = "";
  let unreported: StepChange[] = [];
  try {
    const job = await makeJobDirectory(options.workRoot, options.sandbox, options.slot);
    jobDirectory = job;
    if (task.missingSecrets.length > 0) {
      state = RunState.FAILED;
      message = `the job names secrets that are no longer set: ${task.missingSecrets.join(", ")}`;
      logLine("otto", message);
    }
    if (task.artifactSources.length > 0 && state === RunState.SUCCEEDED) {
      const failed = await neededArtifacts(task, { workspace: job.workspace, owner: job.owner, peers, asTask, signal: cancel.signal, log: (text) => logLine("otto", text) });
      if (failed) {
        state = RunState.FAILED;
        message = failed;
        logLine("otto", message);
      }
    }
    for (const [index, step] of task.steps.entries()) {
      if (state !== RunState.SUCCEEDED) break;
      if (cancel.signal.aborted) break;
      // Reported without waiting: a lost answer is handed out again only to
      // the same agent process and slot, which runs nothing else meanwhile.
      // Times are the agent's: a report may arrive well after the change.
      const startedAt = new Date();
      reporter.report({ stepIndex: index, state: RunState.RUNNING, at: timestampFromDate(startedAt) });
      if (reporter.error) throw reporter.error;
      if (cancel.signal.aborted) break;
      const name = step.name;
      const maskedName = mask(name);
      step.run.trim().split("\n").forEach((line, i) => logLine(name, `${i === 0 ? "$" : ">"} ${line}`));
      const timeoutMs = step.timeout ? Number(step.timeout.seconds) * 1000 + Math.floor(step.timeout.nanos / 1e6) : 0;
      const stepAttributes = { "otto.step": name, "otto.step.index": index, "otto.attempt": task.attempt };
      const { outcome, stepState, summary, finishedAt } = await inSpan(`step ${name}`, stepAttributes, async (span) => {
        const outcome = await runStepProcess({
          script: step.run,
          cwd: job.launchDirectory,
          env: stepEnv(task, step.env, job, options),
          timeoutMs,
          cancel: cancel.signal,
          // Masked with what the output splitter says continues (step-launcher.ts passes it on).
          onOutput: maskedOutput(mask, (text) => sink.text(maskedName, text)),
          pressure: sink,
        });
        const finishedAt = new Date();
        const stepState = stateOf(outcome);
        const summary = describe(outcome, timeoutMs);
        stepDuration.observe({ state: runStateName(stepState) }, (finishedAt.getTime() - startedAt.getTime()) / 1000);
        if (outcome.exitCode !== undefined) span.setAttribute("otto.step.exit_code", outcome.exitCode);
        span.setAttribute("otto.step.state", runStateName(stepState));
        if (stepState !== RunState.SUCCEEDED) span.setStatus({ code: SpanStatusCode.ERROR, message: `step "${name}" ${summary}` });
        return { outcome, stepState, summary, finishedAt };
      });
      logLine(name, `${summary} (${finishedAt.getTime() - startedAt.getTime()} ms)`);
      reporter.report({ stepIndex: index, state: stepState, exitCode: outcome.exitCode, at: timestampFromDate(finishedAt) });
      if (stepState !== RunState.SUCCEEDED) {
        state = stepState;
        message = `step "${name}" ${summary}`;
        break;
      }
    }
    if (timedOut && !handingBack) {
      state = RunState.FAILED;
      message = `job timed out after ${formatDuration(jobTimeoutMs / 1000)}`;
      logLine("otto", message);
    } else if (cancel.signal.aborted && state === RunState.SUCCEEDED) {
      state = RunState.CANCELED;
      message = "canceled";
    }
    if (task.artifacts.length > 0 && !cancel.signal.aborted) {
      const problems = await uploadArtifacts({ task, workspace: job.workspace, peers, asTask, log: (text) => logLine("otto", text) });
      for (const problem of problems) logLine("otto", problem);
      if (problems.length > 0 && state === RunState.SUCCEEDED) {
        state = RunState.FAILED;
        message = problems.join("; ");
      }
    }
    options.handBack?.removeEventListener("abort", onHandBack);
    unreported = await reporter.drain();
  } catch (err) {
    if (takenAway(err)) {
      log.warn("task taken away by the coordinator; stopping it", { err });
      lost = true;
    } else {
      state = RunState.FAILED;
      message = `agent error: ${(err as Error).message}`;
      log.error("task failed inside the agent", { err });
    }
  } finally {
    options.handBack?.removeEventListener("abort", onHandBack);
    clearTimeout(jobTimer);
  }
  try {
    // Closing the log only seals it in Postgres: the objects service moves
    // it to object storage later, so a stalled storage does not hold this up.
    try {
      const rest = await sink.takeRest();
      const close = {
        runId: task.runId,
        job: task.job,
        attempt: task.attempt,
        finalSeq: BigInt(rest?.seq ?? 0),
        finalZstd: rest?.zstd,
        finalSegments: rest?.segments,
      };
      await peers.call("objects", LogStoreService, (c) => c.closeLog(close, asTask), { idempotent: true, retryForMs });
    } catch (err) {
      log.error("could not close the log", { err });
    }
    if (handingBack && !lost) {
      log.info("handing the task back: the agent is stopping");
      await coordinator((c) => c.handBackTask({ ...ref, agentId })).catch((err) => {
        if (!takenAway(err)) throw err;
      });
      state = RunState.QUEUED;
      message = "handed back";
    } else if (!lost) {
      await coordinator((c) => c.completeTask({ ...ref, state, message, steps: unreported })).catch((err) => {
        if (!takenAway(err)) throw err;
      });
    }
  } finally {
    stopHeartbeat();
  }
  if (jobDirectory) await removeJobDirectory(jobDirectory);
  jobSpan.setAttribute("otto.job.state", runStateName(state));
  if (state !== RunState.SUCCEEDED) jobSpan.setStatus({ code: SpanStatusCode.ERROR, message: message || runStateName(state) });
  log.info("task finished", { state: runStateName(state), message });
}

// Puts the artifacts of the jobs the task needs into its workspace; answers
// why the job fails when they could not be had. A download stopped by a
// cancel or the job's timeout is no failure of its own: the steps are not run.
async function neededArtifacts(
  task: Task,
  options: { workspace: string; owner?: FileOwner; peers: ServiceCaller; asTask: CallOptions; signal: AbortSignal; log: (text: string) => void },
): Promise<string | undefined> {
  const { peers, asTask } = options;
  const own = { runId: task.runId, job: task.job, attempt: task.attempt, sources: task.artifactSources };
  const list = async (source: ArtifactSource) =>
    (
      await peers.call("objects", ArtifactStoreService, (c) => c.listNeededArtifacts({ ...own, need: source.job }, asTask), {
        idempotent: true,
        retryForMs: 10_000,
      })
    ).artifacts;
  try {
    await downloadNeededArtifacts({ ...options, runId: task.runId, sources: task.artifactSources, list });
    return undefined;
  } catch (err) {
    if (err instanceof ArtifactDownloadError) return err.message;
    if (options.signal.aborted) return undefined;
    throw err;
  }
}

// A step's output on its way to the log: as it is, or, when the job has
// secrets, as text with them masked.
function maskedOutput(mask: SecretMasker, onText: (text: string | Buffer) => void): OnText {
  if (!mask.needed) return (bytes) => onText(bytes);
  const masked = mask.lines(onText);
  return (bytes, continues) => masked(bytes.toString("utf8"), continues);
}

function stateOf(outcome: StepOutcome): RunState {
  if (outcome.kind === "canceled") return RunState.CANCELED;
  if (outcome.kind === "timed-out") return RunState.FAILED;
  return outcome.exitCode === 0 ? RunState.SUCCEEDED : RunState.FAILED;
}

function describe(outcome: StepOutcome, timeoutMs: number): string {
  if (outcome.kind === "canceled") return "canceled";
  if (outcome.kind === "timed-out") return `timed out after ${timeoutMs / 1000}s`;
  return `exited with code ${outcome.exitCode}`;
}

// Everything a step's environment holds (the README lists it).
function stepEnv(task: Task, stepEnv: Record<string, string>, job: JobDirectory, options: TaskRunnerOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of options.sandbox ? passThroughEnv : [...passThroughEnv, ...passThroughUnsandboxed]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return {
    ...env,
    CI: "true",
    OTTO: "true",
    OTTO_RUN_ID: task.runId,
    OTTO_JOB: task.job,
    OTTO_ATTEMPT: String(task.attempt),
    OTTO_AGENT_ID: options.agentId,
    ...stepAccessEnv(task, options.stepAccess),
    ...job.env,
    ...task.env,
    ...stepEnv,
    ...task.secrets,
  };
}
