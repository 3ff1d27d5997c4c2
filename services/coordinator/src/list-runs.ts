import type { ListRunsRequest, ListRunsResponse } from "@otto/gen/v1/run_service_pb";
import { RunState } from "@otto/gen/v1/run_pb";
import type { Pool } from "@otto/kit/db";
import { loadRuns, requireRunId } from "./run-store.ts";

// Newest first, a page at a time. The page token is the last run of the
// page before: the next page starts after that run's place in the order,
// whatever the filters, so a run that changes state between two pages
// neither moves the pages nor hides the ones after it.
const pageSql = `
SELECT id FROM coordinator.runs
WHERE ($1::uuid IS NULL OR (created_at, id) < (SELECT created_at, id FROM coordinator.runs WHERE id = $1::uuid))
  AND ($3::text IS NULL OR project = $3)
  AND ($4::text IS NULL OR name = $4)
  AND ($5::smallint IS NULL OR state = $5)
ORDER BY created_at DESC, id DESC LIMIT $2`;

export async function listRuns(pool: Pool, req: Pick<ListRunsRequest, "pageSize" | "pageToken" | "project" | "pipeline" | "state">): Promise<Pick<ListRunsResponse, "runs" | "nextPageToken">> {
  const size = req.pageSize || 20;
  if (req.pageToken !== "") requireRunId(req.pageToken);
  const state = req.state === RunState.UNSPECIFIED ? null : req.state;
  const { rows } = await pool.query(pageSql, [req.pageToken || null, size + 1, req.project || null, req.pipeline || null, state]);
  const page = rows.slice(0, size).map((r) => r.id as string);
  return { runs: await loadRuns(pool, page), nextPageToken: rows.length > size ? page[page.length - 1] : "" };
}
