import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { PgBoss } from "pg-boss";
import { AgentService } from "@otto/gen/v1/agent_service_pb";
import { RunService } from "@otto/gen/v1/run_service_pb";
import { startTelemetry } from "@otto/kit/telemetry";
import { loadConfig, readDurationSeconds, readInt, readString } from "@otto/kit/config";
import { createPool, migrate } from "@otto/kit/db";
import { Notifier } from "@otto/kit/notifier";
import { readCommonConfig, serveAndRegister, serviceLogger } from "@otto/kit/service";
import { onShutdown } from "@otto/kit/shutdown";
import { startAdvanceWorkers } from "./advance-worker.ts";
import { agentServiceImpl } from "./agent-routes.ts";
import { registerCoordinatorMetrics } from "./coordinator-metrics.ts";
import { journalChannel, tasksChannel } from "./engine/apply-changes.ts";
import { migrations } from "./migrations.ts";
import { advanceChannel, advanceQueues } from "./engine/run-queue.ts";
import { groupsChannel } from "./engine/concurrency-group.ts";
import { ShardManager, shardsChannel } from "./shards.ts";
import { runServiceImpl } from "./run-routes.ts";
import { startTaskSweeper } from "./task-sweeper.ts";
import { startUnmatchedJobSweeper } from "./unmatched-jobs.ts";
import { authChannel, TokenStore } from "@otto/kit/token-store";
import { createTaskTokenSigner } from "@otto/kit/task-token";
import { createStepTokenSigner } from "@otto/kit/step-token";
import { loadSecretKey } from "@otto/kit/secret-box";
import { AdminService } from "@otto/gen/v1/admin_service_pb";
import { agentListRoutes } from "./agent-list.ts";
import { SecretStore } from "./secret-store.ts";
import { secretRoutes } from "./secret-routes.ts";
import { readRetention, retentionIsOff } from "@otto/kit/retention-config";
import { sweepRetention, type SweepCounts } from "./engine/sweep-retention.ts";
import { objectExpiryOver } from "./retention-objects.ts";
import { retentionRoutes } from "./retention-routes.ts";
import { startRetentionSchedule } from "./retention-schedule.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProjectService } from "@otto/gen/v1/project_service_pb";
import { ForgeHookService } from "@otto/gen/v1/forge_hook_service_pb";
import { ProjectStore } from "./projects/project-store.ts";
import { projectRoutes } from "./projects/project-routes.ts";
import { forgeHookRoutes } from "./projects/hook-routes.ts";
import { startPrepareWorker } from "./projects/prepare-runs.ts";
import { pruneGitCache } from "./git/prune-git-cache.ts";
import { prepareChannel, prepareQueue, prepareQueueOptions } from "./engine/project-run-queue.ts";
import { ensureQueue } from "./queue-worker.ts";
import { branchTip } from "./git/branch-tip.ts";
import { startCommitStatusDelivery, statusJobsChannel, statusQueue, statusQueueOptions } from "./projects/commit-status-delivery.ts";
import { statusChannel } from "./engine/apply-changes.ts";
import { ScheduleStore, scheduleChannel, scheduleQueue, scheduleQueueOptions, startScheduleWorker } from "./projects/schedules.ts";

// First, so that everything after it is traced.
await startTelemetry("coordinator");

const config = loadConfig("coordinator", (env) => ({
  ...readCommonConfig(env),
  databaseUrl: readString(env, "DATABASE_URL"),
  taskLeaseMs: readInt(env, "OTTO_TASK_LEASE_MS", 15_000, 1_000),
  workers: readInt(env, "OTTO_COORDINATOR_WORKERS", 2, 1),
  shardLeaseMs: readInt(env, "OTTO_SHARD_LEASE_MS", 1_500, 500),
  maxActiveRuns: readInt(env, "OTTO_MAX_ACTIVE_RUNS", 1_000, 1),
  maxWatchers: readInt(env, "OTTO_MAX_WATCHERS", 1_000, 1),
  maxAgentWaiters: readInt(env, "OTTO_MAX_AGENT_WAITERS", 500, 1),
  secretsKey:
    env.OTTO_SECRETS_KEY_FILE || env.OTTO_SECRETS_KEY
      ? loadSecretKey({ keyFile: env.OTTO_SECRETS_KEY_FILE || undefined, keyBase64: env.OTTO_SECRETS_KEY || undefined })
      : undefined,
  retention: readRetention(env),
  // Bare repositories kept to read pipeline files at commits (projects' runs).
  gitCacheDir: readString(env, "OTTO_GIT_CACHE_DIR", join(tmpdir(), `otto-git-cache-${process.getuid?.() ?? "user"}`)),
  // A cached repository unused this long is deleted (0: kept for ever).
  gitCacheDays: readInt(env, "OTTO_GIT_CACHE_DAYS", 14, 0),
  cronCheckSeconds: readInt(env, "OTTO_CRON_CHECK_SECONDS", 30, 1),
  maxJobSeconds: readDurationSeconds(env, "OTTO_MAX_JOB_DURATION", 6 * 3600),
  // A job no live agent could take (none has its labels) fails after this.
  unmatchedJobSeconds: readDurationSeconds(env, "OTTO_UNMATCHED_JOB_TIMEOUT", 3600),
  // The first wait before a forge that refused a commit status is asked again (doubling after).
  statusRetryDelaySeconds: readInt(env, "OTTO_STATUS_RETRY_DELAY_SECONDS", 5, 1),
  // The gateway's public URL, for the links statuses carry (else the gateway's registered URL).
  publicUrl: readString(env, "OTTO_PUBLIC_URL", ""),
}));
const log = serviceLogger("coordinator");
for (const note of config.retention.notes) log.warn(note);
const retention = config.retention.policy;

const pool = createPool(config.databaseUrl, { application: "otto-coordinator", max: 12 });
onShutdown("close pool", () => pool.end());
await migrate(pool, "coordinator", migrations);

// Schedules' ticks: how often pg-boss's cron looks for one that is due.
const boss = new PgBoss({
  connectionString: config.databaseUrl,
  schema: "pgboss",
  max: 3,
  application_name: "otto-coordinator-boss",
  cronMonitorIntervalSeconds: config.cronCheckSeconds,
  cronWorkerIntervalSeconds: Math.min(5, config.cronCheckSeconds),
});
boss.on("error", (err) => log.error("pg-boss error", { err }));
await boss.start();
onShutdown("stop pg-boss", () => boss.stop({ graceful: false }));
for (const queue of advanceQueues) {
  if (!(await boss.getQueue(queue))) await boss.createQueue(queue).catch(() => {});
}
await ensureQueue(boss, prepareQueue, prepareQueueOptions);
await ensureQueue(boss, statusQueue, statusQueueOptions(config.statusRetryDelaySeconds));
await ensureQueue(boss, scheduleQueue, scheduleQueueOptions);

const notifier = new Notifier(config.databaseUrl, [advanceChannel, tasksChannel, journalChannel, shardsChannel, authChannel, prepareChannel, statusChannel, statusJobsChannel, scheduleChannel, groupsChannel], log);
await notifier.start();
onShutdown("close listener", () => notifier.close());

const memberId = `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
const shards = new ShardManager({ pool, log, memberId, leaseMs: config.shardLeaseMs });
await shards.start();
notifier.on(shardsChannel, (member) => member !== memberId && void shards.tick());
const workers = startAdvanceWorkers({ pool, boss, notifier, shards, memberId, log, concurrency: config.workers });
const sweeper = startTaskSweeper({ pool, boss, notifier, log, shards, memberId, intervalMs: 500 });

const tokens = new TokenStore(pool, notifier);
await tokens.start();
const signTaskToken = config.security.insecure ? undefined : createTaskTokenSigner(config.security.tls);
const signStepToken = createStepTokenSigner(config.security.insecure ? undefined : config.security.tls);
const secrets = new SecretStore(pool, config.secretsKey);
const projects = new ProjectStore(pool, secrets);
const schedules = new ScheduleStore(pool, boss);
const branchTipOf = (repoUrl: string, branch: string) => branchTip({ repoUrl, branch, cacheDir: config.gitCacheDir });
const gatewayOnly = { services: ["gateway"] };
// A sweep under way when the process stops ends after its current batch.
const stopSweeps = new AbortController();
let sweep!: () => Promise<SweepCounts>;

const { registry } = await serveAndRegister({
  service: "coordinator",
  log,
  config,
  access: {
    [RunService.typeName]: { "*": gatewayOnly },
    [AgentService.typeName]: { "*": { agents: true } },
    [AdminService.typeName]: { SetSecret: gatewayOnly, ListSecrets: gatewayOnly, DeleteSecret: gatewayOnly, SweepRetention: gatewayOnly, ListAgents: gatewayOnly },
    [ProjectService.typeName]: { "*": gatewayOnly },
    [ForgeHookService.typeName]: { "*": gatewayOnly },
  },
  // A forge's webhook body comes whole from the gateway (forges send up to 25 MiB).
  maxBodyBytes: 26 * 1024 * 1024,
  credentials: tokens,
  routes: (router, registry) => {
    router.service(RunService, runServiceImpl(pool, boss, notifier, config, secrets, () => registry.resolve("agent")));
    router.service(
      AgentService,
      agentServiceImpl(pool, boss, notifier, {
        taskLeaseMs: config.taskLeaseMs,
        maxWaiters: config.maxAgentWaiters,
        signTaskToken,
        signStepToken,
        secrets,
        tokens,
        maxJobSeconds: config.maxJobSeconds,
      }),
    );
    const objects = objectExpiryOver(registry);
    sweep = async () => {
      const counts = await sweepRetention(pool, objects, retention, { signal: stopSweeps.signal });
      log.info("retention sweep done", { ...counts });
      return counts;
    };
    router.service(AdminService, { ...secretRoutes(secrets), ...retentionRoutes(retention, () => sweep()), ...agentListRoutes(pool, () => registry.resolve("agent")) });
    router.service(
      ProjectService,
      projectRoutes(pool, boss, projects, schedules, { maxActiveRuns: config.maxActiveRuns, branchTip: branchTipOf }),
    );
    router.service(ForgeHookService, forgeHookRoutes(pool, boss, projects, { maxActiveRuns: config.maxActiveRuns }));
  },
});
registerCoordinatorMetrics({ pool, boss, shards, registry });
const unmatched = startUnmatchedJobSweeper({
  pool,
  log,
  shards,
  memberId,
  liveAgents: () => registry.resolve("agent"),
  timeoutMs: config.unmatchedJobSeconds * 1000,
});
const preparing = startPrepareWorker({ pool, boss, notifier, log, peers: registry, secrets, gitCacheDir: config.gitCacheDir });
const scheduled = startScheduleWorker({ pool, boss, notifier, log, maxActiveRuns: config.maxActiveRuns, branchTip: branchTipOf });
const statuses = startCommitStatusDelivery({
  pool,
  boss,
  notifier,
  log,
  secrets,
  publicUrl: async () => config.publicUrl || ((await registry.resolve("gateway").catch(() => []))[0]?.url ?? ""),
});
const retentionSchedule = await startRetentionSchedule({ boss, enabled: !retentionIsOff(retention), sweep });
// The git cache is this host's: pruned at start and every six hours.
const pruneCache = () => {
  if (config.gitCacheDays === 0) return;
  pruneGitCache(config.gitCacheDir, config.gitCacheDays * 86_400_000).then(
    (removed) => removed.length > 0 && log.info("pruned the git cache", { removed: removed.length }),
    (err) => log.warn("pruning the git cache failed", { err }),
  );
};
pruneCache();
const pruning = setInterval(pruneCache, 6 * 3_600_000);
pruning.unref();
// Registered last, so run first when stopping: peers take the shards over
// while this process drains its calls.
onShutdown("stop workers and release shards", async () => {
  sweeper.stop();
  unmatched.stop();
  clearInterval(pruning);
  stopSweeps.abort();
  await retentionSchedule.stop();
  await preparing.stop();
  await statuses.stop();
  await scheduled.stop();
  await workers.stop();
  await shards.stop();
});
