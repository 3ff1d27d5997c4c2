import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { PipelineRunSchema, PipelineStatusSchema, type PipelineStatus } from "@otto/gen/v1/run_service_pb";
import type { Pool } from "@otto/kit/db";
import { RunState } from "./engine/states.ts";

// Each pipeline's (each project's, for a project's runs) latest run, last
// finished run, and whether one runs now, from the runs kept.
const statusSql = `
WITH r AS (
  SELECT id, state, created_at, finished_at, coalesce((source->>'number')::bigint, 0) AS number,
    project IS NOT NULL AS of_project, coalesce(project, name) AS key
  FROM coordinator.runs WHERE $1::text IS NULL OR coalesce(project, name) = $1
), latest AS (
  SELECT DISTINCT ON (of_project, key) * FROM r ORDER BY of_project, key, created_at DESC, id DESC
), finished AS (
  SELECT DISTINCT ON (of_project, key) * FROM r WHERE finished_at IS NOT NULL ORDER BY of_project, key, finished_at DESC, id DESC
), building AS (
  SELECT DISTINCT of_project, key FROM r WHERE state = ${RunState.RUNNING}
)
SELECT l.key, l.of_project, b.key IS NOT NULL AS building,
  l.id, l.state, l.number, l.created_at, l.finished_at,
  f.id AS f_id, f.state AS f_state, f.number AS f_number, f.created_at AS f_created_at, f.finished_at AS f_finished_at
FROM latest l LEFT JOIN finished f USING (of_project, key) LEFT JOIN building b USING (of_project, key)
ORDER BY l.key, l.of_project`;

export async function pipelineStatuses(pool: Pool, name: string): Promise<PipelineStatus[]> {
  const { rows } = await pool.query(statusSql, [name || null]);
  const ts = (date: Date | null) => (date ? timestampFromDate(date) : undefined);
  return rows.map((row) =>
    create(PipelineStatusSchema, {
      name: row.key,
      project: row.of_project ? row.key : "",
      building: row.building,
      latest: create(PipelineRunSchema, { id: row.id, state: row.state, number: BigInt(row.number), createdAt: ts(row.created_at), finishedAt: ts(row.finished_at) }),
      lastFinished: row.f_id
        ? create(PipelineRunSchema, { id: row.f_id, state: row.f_state, number: BigInt(row.f_number), createdAt: ts(row.f_created_at), finishedAt: ts(row.f_finished_at) })
        : undefined,
    }),
  );
}
