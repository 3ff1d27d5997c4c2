// npm run bench:sql: runs the throughput workload of `npm run bench` once
// with pg_stat_statements loaded into the embedded Postgres and prints the
// statements Otto sent, most frequent first: where round trips go.
// `npm run bench:sql -- --short` does the same for the short-job workload
// (one-job runs, then submits alone), per run and per submit.
process.env.OTTO_PG_PRELOAD = "pg_stat_statements";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startSystem } from "@otto/launcher/system";
import { createOttoClient, pipeline, submit, waitForRun } from "@otto/sdk";
import { cpuSnapshot } from "./cpu.ts";
import { jsonApi } from "./json-api.ts";
import { measureShortJobs } from "./short-jobs.ts";
const shortJobs = process.argv.includes("--short");
const dataDir = await mkdtemp(join(tmpdir(), "otto-prof-"));
await (await import("node:fs/promises")).chmod(dataDir, 0o755);
const system = await startSystem({ dataDir, coordinators: 3, agents: 4, agentSlots: 4, gatewayPort: 0, logMode: "quiet", logFile: join(dataDir, "otto.log") });
const client = createOttoClient({ baseUrl: system.gatewayUrl, token: system.adminToken, caFile: system.caFile });
const db = new pg.Client({ connectionString: system.databaseUrl });
await db.connect();
try {
  await db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  if (shortJobs) await profileShortJobs();
  else await profileThroughput();
} finally {
  await db.end();
  await system.stop();
  await rm(dataDir, { recursive: true, force: true });
}

async function profileThroughput() {
  const ir = pipeline("throughput");
  for (let j = 0; j < 5; j++) ir.job(`job${j}`, { steps: Array.from({ length: 5 }, () => "true") });
  const p = ir.build();
  await waitForRun(client, (await submit(client, p)).id);
  await db.query("SELECT pg_stat_statements_reset()");
  const runs = await Promise.all(Array.from({ length: 40 }, () => submit(client, p)));
  await Promise.all(runs.map((r) => waitForRun(client, r.id)));
  const { rows } = await db.query(`SELECT calls, round(total_exec_time::numeric,1) AS ms, round(total_plan_time::numeric,1) AS plan_ms, left(regexp_replace(query, '\\s+', ' ', 'g'), 150) AS q FROM pg_stat_statements ORDER BY calls DESC LIMIT 60`);
  for (const r of rows) console.log(String(r.calls).padStart(6), String(r.ms).padStart(8), r.q);
  const t = await db.query("SELECT sum(calls) AS calls, sum(total_exec_time) AS ms FROM pg_stat_statements");
  console.log(t.rows[0]);
}

async function profileShortJobs() {
  const runs = Number(process.env.OTTO_BENCH_SHORT_RUNS ?? 200);
  const clients = Number(process.env.OTTO_BENCH_CLIENTS ?? 16);
  const ca = system.caFile ? await readFile(system.caFile) : undefined;
  const api = jsonApi({ baseUrl: system.gatewayUrl, token: system.adminToken, ca, clients });
  const statements = async () => {
    const { rows } = await db.query(
      `SELECT queryid::text AS id, calls::int AS calls, total_exec_time AS ms, total_plan_time AS plan, plans::int AS plans, left(regexp_replace(query, '\\s+', ' ', 'g'), 160) AS q FROM pg_stat_statements`,
    );
    return new Map(rows.map((r) => [r.id, r as { calls: number; ms: number; plan: number; plans: number; q: string }]));
  };
  const commits = async () => {
    await db.query("SELECT pg_stat_clear_snapshot()");
    return Number((await db.query("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")).rows[0].xact_commit);
  };
  try {
    const details = await measureShortJobs({
      api,
      runs,
      warmup: 50,
      clients,
      progress: (text) => process.stderr.write(`bench:sql: ${text}\n`),
      sample: async () => ({ cpu: await cpuSnapshot([]), rpcs: {}, commits: await commits(), wakeups: {}, statements: await statements() }),
    });
    for (const [phase, [before, after]] of Object.entries(details.samples)) {
      const per = [...after.statements]
        .map(([id, s]) => {
          const was = before.statements.get(id);
          return { ...s, calls: (s.calls - (was?.calls ?? 0)) / runs, ms: (s.ms - (was?.ms ?? 0)) / runs, plan: (s.plan - (was?.plan ?? 0)) / runs, plans: (s.plans - (was?.plans ?? 0)) / runs };
        })
        .filter((s) => s.calls > 0)
        .sort((a, b) => b.calls - a.calls);
      const total = per.reduce((sum, s) => sum + s.calls, 0);
      const ms = per.reduce((sum, s) => sum + s.ms, 0);
      const plan = per.reduce((sum, s) => sum + s.plan, 0);
      console.log(`\n${phase === "runs" ? "per short run" : "per submit alone"}: ${total.toFixed(1)} statements, ${ms.toFixed(2)} ms executing, ${plan.toFixed(2)} ms planning, ${((after.commits - before.commits) / runs).toFixed(1)} commits (the profiling queries included)`);
      console.log(" calls/unit  ms/unit  plans/unit  plan ms/unit  statement");
      for (const s of per.slice(0, 60)) console.log(s.calls.toFixed(2).padStart(10), s.ms.toFixed(3).padStart(8), s.plans.toFixed(2).padStart(11), s.plan.toFixed(3).padStart(13), " ", s.q);
    }
  } finally {
    api.close();
  }
}
