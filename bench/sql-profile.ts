// npm run bench:sql: runs the throughput workload of `npm run bench` once
// with pg_stat_statements loaded into the embedded Postgres and prints the
// statements Otto sent, most frequent first: where round trips go.
process.env.OTTO_PG_PRELOAD = "pg_stat_statements";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { startSystem } from "../services/launcher/src/system.ts";
import { createOttoClient, pipeline, submit, waitForRun } from "../sdk/src/index.ts";
const dataDir = await mkdtemp(join(tmpdir(), "otto-prof-"));
await (await import("node:fs/promises")).chmod(dataDir, 0o755);
const system = await startSystem({ dataDir, coordinators: 3, agents: 4, agentSlots: 4, gatewayPort: 0, logMode: "quiet", logFile: join(dataDir, "otto.log") });
const client = createOttoClient({ baseUrl: system.gatewayUrl, token: system.adminToken, caFile: system.caFile });
const db = new pg.Client({ connectionString: system.databaseUrl });
await db.connect();
try {
  await db.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
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
} finally {
  await db.end();
  await system.stop();
  await rm(dataDir, { recursive: true, force: true });
}
