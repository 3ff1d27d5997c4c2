// npm run bench [-- --json]: brings up a real Otto (all processes, real
// Postgres) and prints throughput and latency figures.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { startSystem } from "../services/launcher/src/system.ts";
import { shardOf } from "../services/coordinator/src/shards.ts";
import { createOttoClient, pipeline, submit, waitForRun, RunState } from "../sdk/src/index.ts";

const json = process.argv.includes("--json");
const samples = Number(process.env.OTTO_BENCH_SAMPLES ?? 100);
const dataDir = await mkdtemp(join(tmpdir(), "otto-bench-"));
await chmod(dataDir, 0o755);
const markers = join(dataDir, "markers");

const system = await startSystem({
  dataDir,
  coordinators: 3,
  agents: 4,
  agentSlots: 4,
  gatewayPort: 0,
  logMode: "quiet",
  logFile: join(dataDir, "otto.log"),
  databaseUrl: process.env.OTTO_BENCH_DATABASE_URL,
});
const client = createOttoClient({ baseUrl: system.gatewayUrl });
await mkdir(markers, { recursive: true });
const results: Record<string, number | null> = {};
const progress = (text: string) => process.stderr.write(`bench: ${text}\n`);
let rssByProcess: Record<string, number> = {};
try {
  progress(`latency, ${samples} samples`);
  // Latency on an idle system: SubmitRun to the step's process starting.
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const marker = join(markers, `start-${i}`);
    const ir = pipeline("latency").job("one", { steps: [`mkdir -p ${markers}; date +%s%N > ${marker}`] }).build();
    const t0 = Date.now();
    const run = await submit(client, ir);
    await waitForRun(client, run.id);
    const started = Number(BigInt((await readFile(marker, "utf8")).trim()) / 1_000_000n);
    latencies.push(started - t0);
  }
  latencies.sort((a, b) => a - b);
  results.submit_to_start_ms_p50 = percentile(latencies, 0.5);
  results.submit_to_start_ms_p99 = percentile(latencies, 0.99);

  progress("throughput");
  // Throughput: many runs of trivial steps at once.
  const runs = 40;
  const jobs = 5;
  const steps = 5;
  const ir = pipeline("throughput");
  for (let j = 0; j < jobs; j++) ir.job(`job${j}`, { steps: Array.from({ length: steps }, () => "true") });
  const throughputPipeline = ir.build();
  const db = new pg.Client({ connectionString: system.databaseUrl });
  await db.connect();
  const journalBefore = Number((await db.query("SELECT count(*) FROM coordinator.journal")).rows[0].count);
  const t0 = Date.now();
  const submitted = await Promise.all(Array.from({ length: runs }, () => submit(client, throughputPipeline)));
  const finals = await Promise.all(submitted.map((r) => waitForRun(client, r.id)));
  const seconds = (Date.now() - t0) / 1000;
  const journalAfter = Number((await db.query("SELECT count(*) FROM coordinator.journal")).rows[0].count);
  await db.end();
  const failed = finals.filter((r) => r.state !== RunState.SUCCEEDED).length;
  if (failed > 0) throw new Error(`${failed} throughput runs did not succeed`);
  results.steps_per_s = round((runs * jobs * steps) / seconds);
  results.transitions_per_s = round((journalAfter - journalBefore) / seconds);
  const last = finals.map((r) => timestampDate(r.finishedAt!).getTime()).sort()[finals.length - 1];
  results.throughput_wall_s = round((last - t0) / 1000);
  progress("failover");
  const failovers = await measureFailovers(Number(process.env.OTTO_BENCH_FAILOVERS ?? 5));
  failovers.sort((a, b) => a - b);
  results.failover_ms_max = failovers[failovers.length - 1];
  results.failover_ms_p50 = percentile(failovers, 0.5);
  rssByProcess = Object.fromEntries(
    await Promise.all(system.supervisor.info().map(async (p) => [p.name, p.pid ? round(await rssMb(p.pid)) : 0] as const)),
  );
  results.rss_mb_max = Math.max(...Object.values(rssByProcess));
} finally {
  await system.stop();
  if (!process.env.OTTO_BENCH_KEEP) await rm(dataDir, { recursive: true, force: true });
  else progress(`kept ${dataDir}`);
}

for (const [key, value] of Object.entries(results)) console.log(`${key.padEnd(26)} ${value}`);
console.log(`rss by process (MB)        ${JSON.stringify(rssByProcess)}`);
if (json) console.log(JSON.stringify(results));

// Kills the coordinator owning a run that waits on its first job, releases
// the job, and times from the kill to the peer's dispatch of the next job.
async function measureFailovers(samples: number): Promise<number[]> {
  const db = new pg.Client({ connectionString: system.databaseUrl });
  await db.connect();
  const times: number[] = [];
  try {
    for (let i = 0; i < samples; i++) {
      const gate = join(markers, `gate-${i}`);
      const ir = pipeline("failover")
        .job("wait", { steps: [`while [ ! -f ${gate} ]; do sleep 0.01; done`] })
        .job("next", { needs: ["wait"], steps: ["true"] })
        .build();
      const run = await submit(client, ir);
      await waitForJob(db, run.id, "wait", RunState.RUNNING);
      const { rows } = await db.query("SELECT owner FROM coordinator.shards WHERE shard = $1", [shardOf(run.id)]);
      const victim = system.supervisor.info().find((p) => p.pid && rows[0].owner?.includes(`-${p.pid}-`));
      if (!victim?.pid) throw new Error(`no live coordinator owns shard ${shardOf(run.id)}`);
      progress(`failover ${i + 1}: killing ${victim.name}`);
      const killedAt = Date.now();
      process.kill(victim.pid, "SIGKILL");
      await writeFile(gate, "");
      const final = await waitForRun(client, run.id);
      if (final.state !== RunState.SUCCEEDED) throw new Error(`failover run ${run.id} ended ${final.state}`);
      const next = final.jobs.find((j) => j.name === "next")!;
      times.push(timestampDate(next.startedAt!).getTime() - killedAt);
      await system.supervisor.waitForUrl(victim.name);
    }
  } finally {
    await db.end();
  }
  return times;
}

async function waitForJob(db: pg.Client, runId: string, job: string, state: RunState): Promise<void> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    const { rows } = await db.query("SELECT state FROM coordinator.jobs WHERE run_id = $1 AND name = $2", [runId, job]);
    if (rows[0]?.state === state) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`job ${job} of ${runId} did not reach state ${state}`);
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
