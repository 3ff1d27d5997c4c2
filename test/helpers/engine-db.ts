import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import pg from "pg";
import { PgBoss } from "pg-boss";
import { PipelineSchema, type Pipeline } from "@otto/gen/v1/pipeline_pb";
import { createPool, inTransaction, migrate, type Pool, type PoolClient } from "@otto/kit/db";
import { migrateAuth } from "@otto/kit/token-store";
import { migrations } from "@otto/coordinator/migrations";
import { advanceQueues } from "@otto/coordinator/engine/run-queue";
import { prepareQueue, prepareQueueOptions } from "@otto/coordinator/engine/project-run-queue";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { claimTask, type ClaimedTask, type Claimant } from "@otto/coordinator/engine/claim-task";
import { loadRun } from "@otto/coordinator/run-store";
import { freePort } from "@otto/launcher/system";
import { startEmbeddedPostgres } from "@otto/launcher/embedded-postgres";

// The engine's operations in this process against a real Postgres, with no
// Otto process started: a fresh database on OTTO_TEST_DATABASE_URL's server,
// or an embedded PostgreSQL of the test file's own. The coordinator's and
// the auth schema's migrations are applied, and pg-boss (the queue of
// follow-up work) has its schema and the shards' queues.
export interface EngineDb {
  pool: Pool;
  boss: PgBoss;
  url: string;
  tx<T>(work: (client: PoolClient) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

export async function startEngineDb(): Promise<EngineDb> {
  const { url, drop } = await freshDatabase();
  const pool = createPool(url, { application: "otto-engine-test", max: 6 });
  await migrate(pool, "coordinator", migrations);
  await migrateAuth(pool);
  const boss = new PgBoss({ connectionString: url, schema: "pgboss", max: 2, supervise: false, schedule: false });
  boss.on("error", () => {});
  await boss.start();
  for (const queue of advanceQueues) await boss.createQueue(queue);
  await boss.createQueue(prepareQueue, prepareQueueOptions);
  return {
    pool,
    boss,
    url,
    tx: (work) => inTransaction(pool, work),
    async stop() {
      await boss.stop({ graceful: false });
      await pool.end();
      await drop();
    },
  };
}

async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const serverUrl = process.env.OTTO_TEST_DATABASE_URL;
  if (serverUrl) {
    const name = `otto_engine_${randomBytes(6).toString("hex")}`;
    await onServer(serverUrl, `CREATE DATABASE ${name}`);
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    return { url: url.toString(), drop: () => onServer(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
  }
  const dir = await mkdtemp(join(tmpdir(), "otto-engine-"));
  await chmod(dir, 0o755);
  const db = await startEmbeddedPostgres(join(dir, "postgres"), await freePort());
  return {
    url: db.url,
    async drop() {
      await db.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function onServer(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface JobSpec {
  steps?: string[];
  needs?: string[];
  runsOn?: string[];
  locks?: string[];
  lockLimits?: Record<string, number>;
  retry?: { max: number; exitCodes?: number[]; agentLost?: boolean };
  approval?: { message?: string; timeoutMs?: number };
  if?: string;
  env?: Record<string, string>;
}

// A pipeline as the parser would give it: jobs by name, steps as shell lines.
export function pipelineOf(jobs: Record<string, JobSpec>, name = "engine-test"): Pipeline {
  return create(PipelineSchema, {
    name,
    jobs: Object.entries(jobs).map(([jobName, job]) => ({
      name: jobName,
      needs: job.needs ?? [],
      runsOn: job.runsOn ?? [],
      locks: job.locks ?? [],
      lockLimits: job.lockLimits ?? {},
      condition: job.if ?? "",
      env: job.env ?? {},
      steps: (job.steps ?? ["true"]).map((run) => ({ run })),
      retry: job.retry,
      approval: job.approval && {
        message: job.approval.message ?? "",
        timeout: job.approval.timeoutMs ? { seconds: BigInt(Math.floor(job.approval.timeoutMs / 1000)), nanos: (job.approval.timeoutMs % 1000) * 1e6 } : undefined,
      },
    })),
  });
}

export function submit(db: EngineDb, jobs: Record<string, JobSpec>): Promise<string> {
  return submitRun(db.pool, pipelineOf(jobs), 1_000, randomUUID()).then((submitted) => submitted.runId);
}

// A project row, as ProjectStore.create stores it (the webhook secret is
// not sealed here: the engine never opens it).
export async function project(db: EngineDb, name = `p-${randomUUID().slice(0, 8)}`, repoUrl = "file:///nowhere/acme/app.git"): Promise<string> {
  await db.pool.query(
    "INSERT INTO coordinator.projects (name, repo_url, pipeline_path, default_branch, webhook_secret) VALUES ($1, $2, '.otto.yml', 'main', '\\x00')",
    [name, repoUrl],
  );
  return name;
}

export function agent(id = "agent-1", overrides: Partial<Claimant> = {}): Claimant {
  return { id, labels: [], slots: 4, cpu: 0, memoryBytes: 0n, runningTaskIds: [], slot: 0, incarnation: "one", ...overrides };
}

export async function claim(db: EngineDb, claimant = agent(), leaseMs = 15_000): Promise<ClaimedTask | undefined> {
  return (await db.tx((client) => claimTask(client, claimant, leaseMs))).task;
}

export function run(db: EngineDb, runId: string) {
  return loadRun(db.pool, runId);
}

export async function journal(db: EngineDb, runId: string) {
  const { rows } = await db.pool.query("SELECT seq, job, step, state, exit_code, message FROM coordinator.journal WHERE run_id = $1 ORDER BY seq", [runId]);
  return rows as { seq: string; job: string; step: string; state: number; exit_code: number | null; message: string }[];
}

export async function reservationsOf(db: EngineDb, runId: string) {
  const { rows } = await db.pool.query("SELECT kind, name, attempt FROM coordinator.reservations WHERE run_id = $1 ORDER BY id", [runId]);
  return rows as { kind: string; name: string; attempt: number }[];
}

export async function liveAttemptsOf(db: EngineDb, runId: string) {
  const { rows } = await db.pool.query("SELECT job, attempt, agent_id FROM auth.live_attempts WHERE run_id = $1 ORDER BY job, attempt", [runId]);
  return rows as { job: string; attempt: number; agent_id: string }[];
}
