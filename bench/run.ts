// npm run bench [-- --json]: brings up a real Otto (all processes, real
// Postgres) and prints throughput and latency figures.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { startSystem } from "@otto/launcher/system";
import { shardOf } from "@otto/coordinator/shards";
import { chooseLauncher } from "@otto/agent/step-launcher";
import { createOttoClient, isFinal, pipeline, submit, waitForRun, RunState, type Run } from "@otto/sdk";
import { cpuSnapshot as cpuOfProcesses, wakeupsSnapshot } from "./cpu.ts";
import { jsonApi } from "./json-api.ts";
import { rpcCounts } from "./rpc-counts.ts";
import { measureShortJobs, type ShortJobDetails } from "./short-jobs.ts";
import { spawnPerSecond } from "./spawn-rate.ts";
import { measureLogRate } from "./log-rate.ts";
// What the agents will choose, as they do.
const stepLauncher = chooseLauncher(process.env.OTTO_AGENT_STEP_LAUNCHER === "javascript" ? "javascript" : "auto").kind;
const json = process.argv.includes("--json");
// --short: only the short-job workload (and spawn_per_s), for quick iterations.
const onlyShort = process.argv.includes("--short");
// --logs: only the log workload (and spawn_per_s).
const onlyLogs = process.argv.includes("--logs");
const samples = Number(process.env.OTTO_BENCH_SAMPLES ?? 100);
const dataDir = await mkdtemp(join(tmpdir(), "otto-bench-"));
await chmod(dataDir, 0o755);
// Marker files the steps write and the bench reads: shared with the
// (sandboxed) steps at the same path.
const markers = join(dataDir, "markers");
await mkdir(markers, { recursive: true, mode: 0o777 });
await chmod(markers, 0o777);
const sandboxed = process.env.OTTO_AGENT_SANDBOX !== "off";

const system = await startSystem({
  dataDir,
  coordinators: 3,
  agents: 4,
  agentSlots: 4,
  gatewayPort: 0,
  logMode: "quiet",
  logFile: join(dataDir, "otto.log"),
  databaseUrl: process.env.OTTO_BENCH_DATABASE_URL,
  env: { OTTO_AGENT_SANDBOX_SHARE: markers },
});
const client = createOttoClient({ baseUrl: system.gatewayUrl, token: system.adminToken, caFile: system.caFile });
const results: Record<string, number | null> = {};
const progress = (text: string) => process.stderr.write(`bench: ${text}\n`);
let rssByProcess: Record<string, number> = {};
const cpuPerStep: Record<string, number> = {};
let short: ShortJobDetails | undefined;
let cpuOfLogs: Record<string, number> | undefined;
const spawnRates: number[] = [];
// This Otto's own Postgres server, when it runs one (its backends are its children).
const postgresPid = (JSON.parse(await readFile(system.processesFile, "utf8")).processes as Array<{ name: string; pid?: number }>).find(
  (p) => p.name === "postgres",
)?.pid;
const cpuSnapshot = () => cpuOfProcesses(system.supervisor.info(), postgresPid);
const ca = system.caFile ? await readFile(system.caFile) : undefined;
try {
  if (onlyLogs) {
    progress("spawn_per_s: /bin/sh -e -c true, 4 at a time");
    spawnRates.push(await spawnPerSecond());
    await logWorkload();
    progress("spawn_per_s again");
    spawnRates.push(await spawnPerSecond());
    results.spawn_per_s = round(spawnRates.reduce((a, b) => a + b, 0) / spawnRates.length);
  } else {
    if (!onlyShort) await stepWorkloads();
    // Short jobs, with the most a host could start in the same hour: the
    // plain shell loop before and after them (on the idle system).
    progress("spawn_per_s: /bin/sh -e -c true, 4 at a time");
    spawnRates.push(await spawnPerSecond());
    short = await shortJobs();
    progress("spawn_per_s again");
    spawnRates.push(await spawnPerSecond());
    const spawn = round(spawnRates.reduce((a, b) => a + b, 0) / spawnRates.length);
    Object.assign(results, short.figures, { spawn_per_s: spawn });
    results.runs_per_spawn = Math.round((short.figures.runs_per_s / spawn) * 1000) / 1000;
    results.submits_per_spawn = Math.round((short.figures.submit_per_s / spawn) * 1000) / 1000;
    if (!onlyShort) {
      await failoverAndMemory();
      // Last, so that the memory figures above are not this workload's.
      await logWorkload();
    }
  }
} finally {
  await system.stop();
  if (!process.env.OTTO_BENCH_KEEP) await rm(dataDir, { recursive: true, force: true });
  else progress(`kept ${dataDir}`);
}

for (const [key, value] of Object.entries(results)) console.log(`${key.padEnd(26)} ${value}`);
if (!onlyShort && !onlyLogs) {
  console.log(`rss by process (MB)        ${JSON.stringify(rssByProcess)}`);
  console.log(`cpu ms per step            ${JSON.stringify(cpuPerStep)}`);
}
if (short) {
  console.log(`spawn_per_s, each loop     ${spawnRates.map(round).join(", ")} (targets: runs_per_spawn >= 0.15, submits_per_spawn >= 0.4)`);
  console.log(`cpu ms per short run       ${JSON.stringify(short.cpuPerRun)}`);
  console.log(`cpu ms per submit alone    ${JSON.stringify(short.cpuPerSubmit)}`);
  console.log(`wakeups per short run      ${JSON.stringify(short.wakeupsPerRun)}`);
  console.log(`rpcs per short run         ${JSON.stringify(Object.fromEntries(short.rpcsPerRun))}`);
  console.log(`rpcs per submit alone      ${JSON.stringify(Object.fromEntries(short.rpcsPerSubmit))}`);
}
if (cpuOfLogs) console.log(`cpu ms of the log workload  ${JSON.stringify(cpuOfLogs)}`);
console.log(`agents' step launcher      ${stepLauncher}, steps ${sandboxed ? "sandboxed" : "NOT sandboxed (OTTO_AGENT_SANDBOX=off)"}; logs up to ${process.env.OTTO_LOG_INLINE_MAX_BYTES ?? 16384} bytes stay in Postgres`);
if (json) console.log(JSON.stringify(results));

// One step printing a lot: seq 1 15000000 is 109 MB (OTTO_BENCH_LOG_LINES).
async function logWorkload() {
  const lines = Number(process.env.OTTO_BENCH_LOG_LINES ?? 15_000_000);
  progress(`log_mb_per_s: one step printing seq 1 ${lines}`);
  const before = await cpuSnapshot();
  const figures = await measureLogRate({ client, databaseUrl: system.databaseUrl, markers, processes: () => system.supervisor.info(), lines });
  const after = await cpuSnapshot();
  Object.assign(results, figures);
  cpuOfLogs = Object.fromEntries(Object.entries(after).map(([name, ms]) => [name, Math.round(ms - (before[name] ?? 0))]).filter(([, ms]) => (ms as number) > 50));
}

async function shortJobs(): Promise<ShortJobDetails> {
  const clients = Number(process.env.OTTO_BENCH_CLIENTS ?? 16);
  const api = jsonApi({ baseUrl: system.gatewayUrl, token: system.adminToken, ca, clients });
  const db = new pg.Client({ connectionString: system.databaseUrl });
  await db.connect();
  try {
    return await measureShortJobs({
      api,
      runs: Number(process.env.OTTO_BENCH_SHORT_RUNS ?? 200),
      warmup: Number(process.env.OTTO_BENCH_SHORT_WARMUP ?? 50),
      clients,
      progress,
      sample: async () => ({
        cpu: await cpuSnapshot(),
        rpcs: await rpcCounts(system.supervisor.info(), ca),
        commits: await commitsSoFar(db),
        wakeups: await wakeupsSnapshot(system.supervisor.info(), postgresPid),
      }),
    });
  } finally {
    api.close();
    await db.end();
  }
}

async function commitsSoFar(db: pg.Client): Promise<number> {
  // Statistics reach pg_stat_database with a delay; ask for a fresh snapshot.
  await db.query("SELECT pg_stat_clear_snapshot()");
  return Number((await db.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).rows[0].xact_commit);
}

async function stepWorkloads() {
  progress(`latency, ${samples} samples`);
  // Latency on an idle system: SubmitRun to the step's process starting.
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const marker = join(markers, `start-${i}`);
    const ir = pipeline("latency").job("one", { steps: [`date +%s%N > ${marker}`] }).build();
    const t0 = Date.now();
    const run = await submit(client, ir);
    await waitForRun(client, run.id);
    const started = Number(BigInt((await readFile(marker, "utf8")).trim()) / 1_000_000n);
    latencies.push(started - t0);
  }
  latencies.sort((a, b) => a - b);
  results.submit_to_start_ms_p50 = percentile(latencies, 0.5);
  results.submit_to_start_ms_p99 = percentile(latencies, 0.99);

  // Throughput: many runs of trivial steps at once, twice: once awaited by
  // polling GetRun (the system alone: one small call per 100 ms), once with a
  // WatchRun stream per run (what 40 live watchers add).
  const runs = Number(process.env.OTTO_BENCH_RUNS ?? 40);
  const jobs = 5;
  const steps = 5;
  const totalSteps = runs * jobs * steps;
  const ir = pipeline("throughput");
  for (let j = 0; j < jobs; j++) ir.job(`job${j}`, { steps: Array.from({ length: steps }, () => "true") });
  const throughputPipeline = ir.build();
  const db = new pg.Client({ connectionString: system.databaseUrl });
  await db.connect();
  const journalRows = async () => Number((await db.query("SELECT count(*) FROM coordinator.journal")).rows[0].count);
  const commits = () => commitsSoFar(db);
  const throughput = async (wait: (ids: string[]) => Promise<Run[]>) => {
    const t0 = Date.now();
    const submitted = await Promise.all(Array.from({ length: runs }, () => submit(client, throughputPipeline)));
    const finals = await wait(submitted.map((r) => r.id));
    const failed = finals.filter((r) => r.state !== RunState.SUCCEEDED).length;
    if (failed > 0) throw new Error(`${failed} throughput runs did not succeed`);
    const last = Math.max(...finals.map((r) => timestampDate(r.finishedAt!).getTime()));
    return (last - t0) / 1000;
  };
  progress("throughput, runs awaited by polling");
  const journalBefore = await journalRows();
  const commitsBefore = await commits();
  const cpuBefore = await cpuSnapshot();
  const seconds = await throughput(async (ids) => {
    // Runs finish roughly in order: wait on the first one not yet final.
    const finals: Run[] = [];
    for (const runId of ids) {
      finals.push(
        await poll(
          "the throughput runs to end",
          async () => {
            const { run } = await client.runs.getRun({ runId });
            return run && isFinal(run.state) ? run : undefined;
          },
          100,
          600_000,
        ),
      );
    }
    return finals;
  });
  const cpuAfter = await cpuSnapshot();
  for (const [name, ms] of Object.entries(cpuAfter)) cpuPerStep[name] = round((ms - (cpuBefore[name] ?? 0)) / totalSteps);
  results.cpu_ms_per_step = cpuPerStep.machine;
  results.commits_per_step = round(((await commits()) - commitsBefore) / totalSteps);
  results.steps_per_s = round(totalSteps / seconds);
  results.transitions_per_s = round(((await journalRows()) - journalBefore) / seconds);
  results.throughput_wall_s = round(seconds);
  progress("throughput, a WatchRun stream per run");
  const watchedSeconds = await throughput((ids) => Promise.all(ids.map((id) => waitForRun(client, id))));
  results.steps_per_s_watched = round(totalSteps / watchedSeconds);
  await db.end();
}

async function failoverAndMemory() {
  progress("failover");
  const { times: failovers, takeovers } = await measureFailovers(Number(process.env.OTTO_BENCH_FAILOVERS ?? 5));
  failovers.sort((a, b) => a - b);
  takeovers.sort((a, b) => a - b);
  results.shard_takeover_ms_max = takeovers[takeovers.length - 1];
  results.failover_ms_max = failovers[failovers.length - 1];
  results.failover_ms_p50 = percentile(failovers, 0.5);
  rssByProcess = Object.fromEntries(
    await Promise.all(system.supervisor.info().map(async (p) => [p.name, p.pid ? round(await rssMb(p.pid)) : 0] as const)),
  );
  results.rss_mb_max = Math.max(...Object.values(rssByProcess));
}

// Kills the coordinator owning a run that waits on its first job, releases
// the job, and times from the kill to the peer's dispatch of the next job.
async function measureFailovers(samples: number): Promise<{ times: number[]; takeovers: number[] }> {
  const db = new pg.Client({ connectionString: system.databaseUrl });
  await db.connect();
  const times: number[] = [];
  const takeovers: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const gate = join(markers, `gate-${i}`);
      const ir = pipeline("failover")
        .job("wait", { steps: [`while [ ! -f ${gate} ]; do sleep 0.01; done`] })
        .job("next", { needs: ["wait"], steps: ["true"] })
        .build();
      const run = await submit(client, ir);
      await waitForJob(db, run.id, "wait", RunState.RUNNING);
      const victim = await liveOwnerOf(db, shardOf(run.id));
      progress(`failover ${i + 1}: killing ${victim.name}`);
      const killedAt = Date.now();
      process.kill(victim.pid, "SIGKILL");
      await writeFile(gate, "");
      const final = await waitForRun(client, run.id);
      if (final.state !== RunState.SUCCEEDED) throw new Error(`failover run ${run.id} ended ${final.state}`);
      const next = final.jobs.find((j) => j.name === "next")!;
      times.push(timestampDate(next.startedAt!).getTime() - killedAt);
      await liveOwnerOf(db, shardOf(run.id));
      takeovers.push(Date.now() - killedAt);
      await system.supervisor.waitForUrl(victim.name);
    }
  } finally {
    await db.end();
  }
  return { times, takeovers };
}

// The live coordinator that owns `shard`, once there is one.
function liveOwnerOf(db: pg.Client, shard: number) {
  return poll(`a live coordinator to own shard ${shard}`, async () => {
    const { rows } = await db.query("SELECT owner FROM coordinator.shards WHERE shard = $1 AND lease_expires_at > now()", [shard]);
    const owner = system.supervisor.info().find((p) => p.pid && rows[0]?.owner?.includes(`-${p.pid}-`));
    return owner?.pid ? { name: owner.name, pid: owner.pid } : undefined;
  });
}

function waitForJob(db: pg.Client, runId: string, job: string, state: RunState) {
  return poll(`job ${job} of ${runId} to reach state ${state}`, async () => {
    const { rows } = await db.query("SELECT state FROM coordinator.jobs WHERE run_id = $1 AND name = $2", [runId, job]);
    return rows[0]?.state === state || undefined;
  });
}

// Asks `check` every `intervalMs` until it answers, for up to `timeoutMs`.
async function poll<T>(what: string, check: () => Promise<T | undefined>, intervalMs = 10, timeoutMs = 30_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const answer = await check();
    if (answer !== undefined) return answer;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
