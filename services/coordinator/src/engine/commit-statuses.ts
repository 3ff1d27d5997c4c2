import type { PoolClient } from "@otto/kit/db";
import { statusChannel } from "./apply-changes.ts";

// The commit statuses a project's run owes its forge are rows of
// coordinator.commit_statuses, written in the transaction of the change they
// report: `pending` here when the run gets its jobs, the final state by the
// write path when the run ends (apply-changes.ts). commit-status-delivery.ts
// queues and sends them. Only projects with a forge and a token owe any.
export async function owePendingStatus(client: PoolClient, runId: string, description: string): Promise<void> {
  const { rowCount } = await client.query(
    `INSERT INTO coordinator.commit_statuses (run_id, project, sha, context, state, description)
     SELECT r.id, r.project, r.source->>'sha', 'otto/' || r.name, 'pending', $2
     FROM coordinator.runs r JOIN coordinator.projects p ON p.name = r.project AND p.forge_kind <> '' AND p.forge_token_secret <> ''
     WHERE r.id = $1 AND r.source IS NOT NULL`,
    [runId, description],
  );
  if (rowCount) await client.query("SELECT pg_notify($1, '')", [statusChannel]);
}
