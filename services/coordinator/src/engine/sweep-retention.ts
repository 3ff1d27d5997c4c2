import type { Pool } from "@otto/kit/db";
import type { RetentionPolicy } from "@otto/kit/retention-config";
import type { ExpiryScope, Expired } from "@otto/kit/expiry-scope";
import { finalStates } from "./states.ts";

// The objects service's half: it deletes what the runs stored, objects
// first, then rows, and says which runs it had to leave for later (a log
// still open or not yet archived).
export interface ObjectExpiry {
  expire(runIds: string[], scope: ExpiryScope): Promise<Expired>;
}

export interface SweepCounts {
  runs: number;
  logs: number;
  artifacts: number;
  objects: number;
  // Expired runs left for the next sweep.
  deferredRuns: number;
}

export const defaultBatchSize = 500;

// Deletes what retention expired: finished runs older than
// `policy.runDays`, with everything they stored, then the logs and
// artifacts of the runs kept, by their own (shorter) retention. Runs not
// yet finished, and all of theirs, are never touched. Batch by batch, in
// the order the runs finished: at most `batchSize` runs at a time have
// their objects deleted, then their rows in one statement (a transaction
// of its own), so that a crash leaves rows the next sweep takes up again.
// One sweep at a time in the whole system: a second waits for the first to
// end, then finds only what is left.
export async function sweepRetention(
  pool: Pool,
  objects: ObjectExpiry,
  policy: RetentionPolicy,
  options: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<SweepCounts> {
  const batchSize = options.batchSize ?? defaultBatchSize;
  return oneSweepAtATime(pool, async () => {
    const counts: SweepCounts = { runs: 0, logs: 0, artifacts: 0, objects: 0, deferredRuns: 0 };
    const deferred = new Set<string>();
    for (const [scope, days] of [
      ["run", policy.runDays],
      ["logs", policy.logDays],
      ["artifacts", policy.artifactDays],
    ] as const) {
      // Logs and artifacts kept as long as their runs went with them.
      if (days === 0 || (scope !== "run" && policy.runDays > 0 && days >= policy.runDays)) continue;
      let after = { finished: "-infinity", id: "00000000-0000-0000-0000-000000000000" };
      for (;;) {
        if (options.signal?.aborted) break;
        const { rows } = await pool.query<{ id: string; finished: string }>(expiredSql[scope], [days, after.finished, after.id, batchSize, policy.runDays]);
        if (rows.length === 0) break;
        after = rows.at(-1)!;
        const ids = rows.map((row) => row.id);
        const expired = await objects.expire(ids, scope);
        const later = new Set(expired.deferredRunIds);
        for (const id of later) deferred.add(id);
        const done = ids.filter((id) => !later.has(id));
        if (done.length > 0) {
          const { rows: gone } = await pool.query(doneSql[scope], scope === "run" ? [done, days] : [done]);
          if (scope === "run") counts.runs += gone[0].n;
        }
        counts.logs += expired.logs;
        counts.artifacts += expired.artifacts;
        counts.objects += expired.objects;
        if (rows.length < batchSize) break;
      }
    }
    counts.deferredRuns = deferred.size;
    return counts;
  });
}

// $1 days, $2/$3 the last run of the previous batch (when it finished, as
// text: a Date would lose the microseconds), $4 the batch size, $5 the
// runs' own retention in days: the logs and artifacts of a run past it are
// the run pass's (which may leave the run whole for later).
const expiredOf = (kept: string) => `
  SELECT id, finished_at::text AS finished FROM coordinator.runs
  WHERE finished_at IS NOT NULL ${kept} AND (finished_at, id) > ($2::timestamptz, $3::uuid)
    AND finished_at < now() - make_interval(secs => $1::float8 * 86400)
    AND state IN (${finalStates.join(", ")})
  ORDER BY finished_at, id LIMIT $4`;

const keptRun = "AND ($5::float8 = 0 OR finished_at >= now() - make_interval(secs => $5::float8 * 86400))";

const expiredSql: Record<ExpiryScope, string> = {
  run: expiredOf("AND $5::float8 > 0"),
  logs: expiredOf(`AND logs_expired_at IS NULL ${keptRun}`),
  artifacts: expiredOf(`AND artifacts_expired_at IS NULL ${keptRun}`),
};

// $1 the runs whose objects are gone, and for runs $2 days. A deleted run takes its
// jobs, steps, tasks and journal with it (ON DELETE CASCADE).
const doneSql: Record<ExpiryScope, string> = {
  run: `WITH gone AS (
          DELETE FROM coordinator.runs WHERE id = ANY($1::uuid[]) AND finished_at < now() - make_interval(secs => $2::float8 * 86400)
          RETURNING id
        ), reservations AS (
          DELETE FROM coordinator.reservations r USING gone WHERE r.run_id = gone.id
        )
        SELECT count(*)::int AS n FROM gone`,
  logs: `UPDATE coordinator.runs SET logs_expired_at = now() WHERE id = ANY($1::uuid[]) AND logs_expired_at IS NULL`,
  artifacts: `UPDATE coordinator.runs SET artifacts_expired_at = now() WHERE id = ANY($1::uuid[]) AND artifacts_expired_at IS NULL`,
};

// A lock held by a session of its own for the whole sweep (longer than a
// transaction may stay idle here): closing the session, or the process
// dying, releases it.
async function oneSweepAtATime<T>(pool: Pool, work: () => Promise<T>): Promise<T> {
  const session = await pool.connect();
  try {
    await session.query("SET statement_timeout = 0");
    await session.query("SELECT pg_advisory_lock(hashtext('otto-retention-sweep'))");
    return await work();
  } finally {
    session.release(true);
  }
}
