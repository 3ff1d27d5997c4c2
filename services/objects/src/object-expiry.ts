import type { Pool } from "@otto/kit/db";
import type { ExpiryScope, Expired } from "@otto/kit/expiry-scope";
import type { ObjectStore } from "./object-store.ts";
import { artifactsPrefixOf } from "./artifact-store.ts";
import { logsPrefixOf } from "./log-store.ts";

// Deletes what retention expired of finished runs (the coordinator decides
// which): first the objects in storage, then the rows, so that a crash in
// between leaves rows that still name the objects, and the next sweep
// deletes them again (deleting an absent object is no error). Done twice,
// it deletes nothing twice. Besides the objects its rows name, a run's
// prefixes in storage are listed, so that an object no row names (an
// artifact whose upload never completed, a log archive whose row was not
// updated) goes too.
export async function expireObjects(pool: Pool, store: Pick<ObjectStore, "removeMany" | "keysUnder">, runIds: string[], scope: ExpiryScope): Promise<Expired> {
  const { rows } = await pool.query<{ run_id: string; object_key: string; busy: boolean }>(
    `SELECT run_id, object_key, state = 'open' OR archive_due IS NOT NULL AS busy
     FROM objects.logs WHERE $2 AND run_id = ANY($1::uuid[]) AND state <> 'expired'
     UNION ALL
     SELECT run_id, object_key, false FROM objects.artifacts WHERE $3 AND run_id = ANY($1::uuid[]) AND expired_at IS NULL`,
    [runIds, scope !== "artifacts", scope !== "logs"],
  );
  const deferred = new Set(rows.filter((row) => row.busy).map((row) => row.run_id));
  const done = runIds.filter((id) => !deferred.has(id));
  const keys = new Set(rows.filter((row) => !deferred.has(row.run_id) && row.object_key !== "").map((row) => row.object_key));
  // A batch may name hundreds of runs: their prefixes are listed a few at a time.
  const prefixes = done.flatMap((runId) => prefixesOf[scope](runId));
  for (let i = 0; i < prefixes.length; i += listsAtOnce) {
    const listed = await Promise.all(prefixes.slice(i, i + listsAtOnce).map((prefix) => store.keysUnder(prefix)));
    for (const key of listed.flat()) keys.add(key);
  }
  await store.removeMany([...keys]);
  const counts = done.length === 0 ? { logs: 0, artifacts: 0 } : (await pool.query(rowsSql[scope], [done])).rows[0];
  return { deferredRunIds: [...deferred], logs: counts.logs, artifacts: counts.artifacts, objects: keys.size };
}

const listsAtOnce = 8;

const prefixesOf: Record<ExpiryScope, (runId: string) => string[]> = {
  run: (runId) => [logsPrefixOf(runId), artifactsPrefixOf(runId)],
  logs: (runId) => [logsPrefixOf(runId)],
  artifacts: (runId) => [artifactsPrefixOf(runId)],
};

// $1: the runs whose objects are gone. Each counts what it deleted or
// marked now (not what an earlier sweep had marked already).
const rowsSql: Record<ExpiryScope, string> = {
  run: `WITH chunks AS (
          DELETE FROM objects.log_chunks WHERE run_id = ANY($1::uuid[])
        ), logs AS (
          DELETE FROM objects.logs WHERE run_id = ANY($1::uuid[]) RETURNING state
        ), artifacts AS (
          DELETE FROM objects.artifacts WHERE run_id = ANY($1::uuid[]) RETURNING expired_at
        )
        SELECT (SELECT count(*) FROM logs WHERE state <> 'expired')::int AS logs,
          (SELECT count(*) FROM artifacts WHERE expired_at IS NULL)::int AS artifacts`,
  logs: `WITH logs AS (
           UPDATE objects.logs SET state = 'expired', expired_at = now(), object_key = ''
           WHERE run_id = ANY($1::uuid[]) AND state = 'closed' AND archive_due IS NULL
           RETURNING run_id, job, attempt
         ), chunks AS (
           DELETE FROM objects.log_chunks c USING logs l WHERE c.run_id = l.run_id AND c.job = l.job AND c.attempt = l.attempt
         )
         SELECT count(*)::int AS logs, 0 AS artifacts FROM logs`,
  artifacts: `WITH artifacts AS (
                UPDATE objects.artifacts SET expired_at = now() WHERE run_id = ANY($1::uuid[]) AND expired_at IS NULL RETURNING 1
              )
              SELECT 0 AS logs, count(*)::int AS artifacts FROM artifacts`,
};
