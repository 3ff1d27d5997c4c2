import type { PgBoss } from "pg-boss";
import type { Pool } from "@otto/kit/db";
import { gaugeOnScrape } from "@otto/kit/metrics";
import type { RegistryClient } from "@otto/kit/registry-client";
import { runStateName } from "@otto/contracts/run-state";
import { advanceQueues } from "./engine/run-queue.ts";
import type { ShardManager } from "./shards.ts";

// The coordinator's gauges, read from Postgres, pg-boss and the registry when
// Prometheus scrapes. All but the shard count describe the whole system, so
// every coordinator reports the same values: aggregate them with max().
export function registerCoordinatorMetrics(options: { pool: Pool; boss: PgBoss; shards: ShardManager; registry: RegistryClient }) {
  const { pool, boss, shards, registry } = options;
  gaugeOnScrape("otto_shards_owned", "Shards this coordinator owns now", [], async () => [{ value: shards.owned().size }]);
  gaugeOnScrape("otto_runs", "Runs in progress, by state", ["state"], async () => {
    const { rows } = await pool.query(
      "SELECT state, count(*)::int AS n FROM coordinator.runs WHERE finished_at IS NULL GROUP BY state",
    );
    return rows.map((row) => ({ labels: { state: runStateName(row.state) }, value: row.n }));
  });
  gaugeOnScrape("otto_jobs", "Jobs of runs in progress, by state", ["state"], async () => {
    const { rows } = await pool.query(
      `SELECT j.state, count(*)::int AS n FROM coordinator.jobs j JOIN coordinator.runs r ON r.id = j.run_id
       WHERE r.finished_at IS NULL GROUP BY j.state`,
    );
    return rows.map((row) => ({ labels: { state: runStateName(row.state) }, value: row.n }));
  });
  gaugeOnScrape("otto_advance_queue_depth", "Advance jobs waiting in each shard's pg-boss queue", ["queue"], async () => {
    const queues = await boss.getQueues(advanceQueues);
    return queues.map((queue) => ({ labels: { queue: queue.name }, value: queue.queuedCount }));
  });
  gaugeOnScrape("otto_agents", "Live agents (registered, lease current)", [], async () => [
    { value: (await registry.resolve("agent")).length },
  ]);
  gaugeOnScrape("otto_slots", "Task slots of all live agents: total, and free (not reserved)", ["state"], async () => {
    const total = (await registry.resolve("agent")).reduce((sum, agent) => sum + agent.slots, 0);
    const { rows } = await pool.query("SELECT count(*)::int AS n FROM coordinator.reservations WHERE kind = 'slot'");
    return [
      { labels: { state: "total" }, value: total },
      { labels: { state: "free" }, value: Math.max(0, total - rows[0].n) },
    ];
  });
}
