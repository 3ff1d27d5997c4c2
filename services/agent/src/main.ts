import { availableParallelism, hostname, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { randomBytes, randomUUID } from "node:crypto";
import { AgentService } from "@otto/gen/v1/agent_service_pb";
import { startTelemetry } from "@otto/kit/telemetry";
import { ConfigError, loadConfig, readChoice, readInt, readList, readString } from "@otto/kit/config";
import { agentIdFromHost, agentIdProblem } from "@otto/kit/agent-id";
import { Gauge, metrics } from "@otto/kit/metrics";
import { retry, serviceLogger } from "@otto/kit/service";
import { draining, installSignalHandlers, onShutdown, shutdownDeadlineMs } from "@otto/kit/shutdown";
import { startProbeServer } from "@otto/kit/probes";
import { RegistryClient } from "@otto/kit/registry-client";
import { insecureWarning } from "@otto/kit/transport-security";
import { readPublicEndpoint } from "./public-endpoint.ts";
import { GatewayCaller } from "./gateway-caller.ts";
import { AgentUsageError, agentArgsAsEnv, agentUsage } from "./agent-args.ts";
import { startStepLauncher } from "./step-process.ts";
import { ottoCliExposure, parseShares, parseStepUser, type SandboxSettings } from "./step-sandbox.ts";
import { stepCaPlaces, writeStepCa } from "./step-credential.ts";
import { sandboxProblem } from "./sandbox-probe.ts";
import { claimWorkRoot, workRootProblem } from "./work-root.ts";
import { chooseLauncher, type StepLauncher } from "./step-launcher.ts";
import { obtainAgentCredential } from "./agent-credential.ts";
import { configureClients, useCredential } from "@otto/kit/clients";
import { Code, ConnectError } from "@connectrpc/connect";
import { runTask } from "./task-runner.ts";
import { RunningTasks } from "./running-tasks.ts";

if (process.argv.includes("--help")) {
  process.stdout.write(agentUsage);
  process.exit(0);
}
try {
  Object.assign(process.env, agentArgsAsEnv(process.argv.slice(2)));
} catch (err) {
  process.stderr.write(`agent: ${(err as Error).message}\n${err instanceof AgentUsageError ? agentUsage : ""}`);
  process.exit(2);
}

// First, so that everything after it is traced.
await startTelemetry("agent");

const config = loadConfig("agent", (env) => {
  const agentId = readString(env, "OTTO_AGENT_ID", agentIdFromHost(hostname(), randomBytes(3).toString("hex")));
  const badId = agentIdProblem(agentId);
  if (badId) throw new ConfigError(`OTTO_AGENT_ID: ${badId}`);
  // Root's agents keep their jobs out of the shared /tmp.
  const workRoot = readString(env, "OTTO_AGENT_WORK_DIR", join(process.getuid?.() === 0 ? "/var/lib/otto-agent" : join(tmpdir(), `otto-agent-${process.getuid?.()}`), agentId));
  return {
    ...readPublicEndpoint(env),
    // Where the agent answers /healthz, /readyz and /metrics (plain HTTP).
    host: readString(env, "OTTO_HOST", "127.0.0.1"),
    port: readInt(env, "OTTO_PORT", 0),
    agentId,
    labels: readList(env, "OTTO_AGENT_LABELS", [process.platform, hostname()]),
    slots: readInt(env, "OTTO_AGENT_SLOTS", 2, 1),
    cpu: readInt(env, "OTTO_AGENT_CPU", availableParallelism(), 1),
    memoryMb: readInt(env, "OTTO_AGENT_MEMORY_MB", Math.floor(totalmem() / 1024 / 1024), 1),
    workRoot,
    onStop: readChoice(env, "OTTO_AGENT_ON_STOP", ["finish", "hand-back"], "finish"),
    finishTimeoutMs: readInt(env, "OTTO_AGENT_FINISH_TIMEOUT_MS", 60_000, 0),
    reportGatherMs: readInt(env, "OTTO_AGENT_REPORT_GATHER_MS", 100, 0),
    stepLauncher: readChoice(env, "OTTO_AGENT_STEP_LAUNCHER", ["auto", "native", "javascript"], "auto"),
    sandbox: readChoice(env, "OTTO_AGENT_SANDBOX", ["on", "off"], "on"),
    stepUser: parseStepUser(readString(env, "OTTO_AGENT_STEP_USER", "65534:65534")),
    sandboxShare: parseShares(readString(env, "OTTO_AGENT_SANDBOX_SHARE", "")),
    joinToken: env.OTTO_AGENT_JOIN_TOKEN || undefined,
    // Kept for the next start, beside the jobs.
    credentialFile: readString(env, "OTTO_AGENT_CREDENTIAL_FILE", join(workRoot, "credential")),
  };
});
// What a stopping agent allows for handing its tasks back, and in all:
// room to finish running tasks, then to hand back what is left (stopping
// steps, closing their logs, telling the coordinator).
const handBackMs = 15_000;
const stopAllowanceMs = (config.onStop === "finish" ? config.finishTimeoutMs : 0) + handBackMs;
const log = serviceLogger("agent").child({ agent_id: config.agentId });

// The CA the agent trusts, for its steps to call Otto with (otto jobs add).
const stepCa = config.ca && stepCaPlaces(config.workRoot, config.sandbox === "on");
const sandbox: SandboxSettings | undefined =
  config.sandbox === "on" ? { ...config.stepUser, expose: [...ottoCliExposure(), ...(stepCa ? stepCa.expose : [])], share: config.sandboxShare } : undefined;
const unsafeWorkRoot = (await workRootProblem(config.workRoot)) ?? (await claimWorkRoot(config.workRoot));
if (unsafeWorkRoot) {
  log.error(`cannot work in OTTO_AGENT_WORK_DIR ${config.workRoot}: ${unsafeWorkRoot}`);
  process.exit(78);
}
if (stepCa) writeStepCa(stepCa.host, config.ca!);
let launcher: StepLauncher;
try {
  // Only the native launcher sandboxes: `auto` insists on it then.
  const chosen = chooseLauncher(sandbox && config.stepLauncher === "auto" ? "native" : config.stepLauncher);
  if (chosen.why) log.warn(`starting steps with the JavaScript launcher: ${chosen.why}`);
  launcher = startStepLauncher(chosen.kind, sandbox);
} catch (err) {
  const why = (err as Error).message;
  log.error(sandbox ? `cannot sandbox steps: ${why}; or set OTTO_AGENT_SANDBOX=off to run steps unsandboxed` : "cannot start steps", { err: why });
  process.exit(78);
}
if (sandbox) {
  const problem = await sandboxProblem(launcher, config.workRoot);
  if (problem) {
    log.error(`this host cannot sandbox steps: ${problem}. Run the agent as root, or as a user on a host that allows unprivileged user namespaces (with PID and mount namespaces), or set OTTO_AGENT_SANDBOX=off to run steps unsandboxed (they can then read everything the agent can)`);
    process.exit(78);
  }
  if (sandbox.uid === 0) log.warn("steps run as root inside their sandbox (OTTO_AGENT_STEP_USER=root): a step can undo its confinement");
} else {
  log.warn("steps are NOT sandboxed (OTTO_AGENT_SANDBOX=off): they run as the agent's user and can read everything it can");
}

installSignalHandlers((msg, fields) => log.info(msg, fields as Record<string, unknown>), shutdownDeadlineMs(stopAllowanceMs));
if (!config.insecure) {
  configureClients({ ca: config.ca });
  try {
    useCredential(await obtainAgentCredential({ ...config, log }));
  } catch (err) {
    log.error(`cannot join Otto at ${config.url}`, { err: (err as Error).message });
    process.exit(78);
  }
} else {
  log.warn(insecureWarning);
}
const probes = await startProbeServer({ host: config.host, port: config.port, log });
onShutdown("close probes", () => probes.close());
const peers = new GatewayCaller(config.url);
// Otto counts agents and their slots from their entries in the registry,
// which an agent keeps through the gateway like every other call.
const registration = await retry(() =>
  new RegistryClient(config.url, log).register({ service: "agent", url: probes.url, instanceId: config.agentId, labels: config.labels, slots: config.slots }),
);
onShutdown("deregister", () => registration.stop());
draining.addEventListener("abort", () => probes.setReady(false));
probes.setReady(true);
log.info("listening", { url: probes.url, instance_id: config.agentId });

const stopping = new AbortController();
// This run of the agent process: a task answer lost on its way is handed out
// again only to the same process (and slot).
const incarnation = randomUUID();
const handBack = new AbortController();
const running = new RunningTasks();
const busySlots = new Gauge({ name: "otto_agent_busy_slots", help: "Slots running a task now", registers: [metrics] });
new Gauge({ name: "otto_agent_slots", help: "Task slots this agent offers", registers: [metrics] }).set(config.slots);

// One long-poll loop per slot: ask any coordinator for a task, run it, repeat.
async function slotLoop(slot: number) {
  while (!stopping.signal.aborted) {
    try {
      const request = {
        agentId: config.agentId,
        labels: config.labels,
        waitMs: 20_000,
        slots: config.slots,
        cpu: config.cpu,
        memoryBytes: BigInt(config.memoryMb) * 1024n * 1024n,
        runningTaskIds: running.taskIds(),
        slot,
        incarnation,
      };
      const { task } = await peers.call("coordinator", AgentService, (c) =>
        c.acquireTask(request, { signal: stopping.signal, timeoutMs: 35_000 }),
      );
      if (!task || running.has(task)) continue;
      log.info("task acquired", { run_id: task.runId, job: task.job, attempt: task.attempt });
      const work = runTask(task, {
        agentId: config.agentId,
        workRoot: config.workRoot,
        peers,
        log,
        handBack: handBack.signal,
        reportGatherMs: config.reportGatherMs,
        sandbox,
        slot,
        stepAccess: { url: config.url, caFile: stepCa ? stepCa.step : "" },
      });
      running.start(task);
      busySlots.set(running.size);
      let confirmed = false;
      await work
        .then(() => (confirmed = true))
        .finally(() => {
          running.finish(task, confirmed);
          busySlots.set(running.size);
        });
    } catch (err) {
      if (stopping.signal.aborted) break;
      const refused = err instanceof ConnectError && (err.code === Code.Unauthenticated || err.code === Code.PermissionDenied);
      if (refused) log.error("Otto refuses this agent's credential (revoked?); an admin must let it join again", { err: err.message });
      else log.warn("acquire failed; retrying", { err });
      await new Promise((r) => setTimeout(r, refused ? 5_000 : 500));
    }
  }
}

const loops = Array.from({ length: config.slots }, (_, slot) => slotLoop(slot));
// Stopping: take no new tasks; then either finish the running ones (handing
// back whatever is still running after OTTO_AGENT_FINISH_TIMEOUT_MS) or
// hand them back at once. A task is never left without an answer.
onShutdown("finish or hand back running tasks", async () => {
  stopping.abort();
  if (running.size > 0) log.info("stopping with tasks running", { tasks: running.size, on_stop: config.onStop });
  const timer = setTimeout(() => handBack.abort(), config.onStop === "finish" ? config.finishTimeoutMs : 0);
  // Each slot loop ends after its task, including one whose answer was
  // still arriving when the stop began.
  await Promise.allSettled(loops);
  clearTimeout(timer);
});
log.info("agent ready", { url: config.url, labels: config.labels, slots: config.slots, step_launcher: launcher.kind, sandbox: config.sandbox, probes: probes.url });
