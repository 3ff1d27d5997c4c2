import type { Pipeline } from "@otto/gen/v1/pipeline_pb";
import { concurrencyGroupName } from "@otto/contracts/concurrency-group";
import type { PoolClient } from "@otto/kit/db";
import type { Change } from "./apply-changes.ts";
import { cancelRun } from "./cancel-run.ts";
import { RunState } from "./states.ts";

// Concurrency groups: at most `limit` runs of a group are admitted (run) at
// once; the others wait in line, QUEUED without tasks, in the order they
// joined (group_place), and none is dropped. Whoever changes a group's line
// holds the group's lock: a run joining it, and a waiting run's advance
// that admits it (advance-run.ts). The line moves on when an admitted run
// ends: its advance notifies `groupsChannel`, and the owners of the waiting
// runs' shards advance them (task-sweeper.ts), which also catches up after
// a coordinator's death, since the line is only ever read from the rows.

export const groupsChannel = "otto_groups";

export interface ConcurrencyGroup {
  name: string;
  limit: number;
  cancelInProgress: boolean;
}

// The group a new run of `pipeline` joins; `branch` is the run's branch, if
// a project's run.
export function concurrencyGroupOf(pipeline: Pipeline, branch = ""): ConcurrencyGroup | undefined {
  const spec = pipeline.concurrency;
  if (!spec) return undefined;
  return { name: concurrencyGroupName(spec.group, branch), limit: Math.max(1, spec.limit), cancelInProgress: spec.cancelInProgress };
}

function lockGroup(client: PoolClient, name: string): Promise<unknown> {
  return client.query("SELECT pg_advisory_xact_lock(hashtextextended('otto.concurrency-group:' || $1, 0))", [name]);
}

// Puts a new run at the end of its group's line: admitted at once when
// nobody waits and the group has room. With cancel-in-progress it first
// cancels the group's admitted runs (it then waits for them to end).
export async function joinConcurrencyGroup(client: PoolClient, runId: string, group: ConcurrencyGroup): Promise<{ admitted: boolean; note: Change }> {
  await lockGroup(client, group.name);
  if (group.cancelInProgress) {
    const { rows: running } = await client.query(
      `SELECT id FROM coordinator.runs WHERE concurrency_group = $1 AND admitted AND finished_at IS NULL AND NOT cancel_requested AND id <> $2 ORDER BY group_place`,
      [group.name, runId],
    );
    for (const { id } of running) await cancelRun(client, id, `canceled by run ${runId} of concurrency group "${group.name}" (cancel-in-progress)`);
  }
  const { rows } = await client.query(
    `SELECT count(*) FILTER (WHERE admitted)::int AS admitted, count(*) FILTER (WHERE NOT admitted)::int AS waiting
     FROM coordinator.runs WHERE concurrency_group = $1 AND finished_at IS NULL AND id <> $2`,
    [group.name, runId],
  );
  const { admitted: running, waiting } = rows[0];
  const admitted = waiting === 0 && running < group.limit;
  await client.query(
    `UPDATE coordinator.runs SET concurrency_group = $2, concurrency_limit = $3, admitted = $4, group_place = nextval('coordinator.group_line') WHERE id = $1`,
    [runId, group.name, group.limit, admitted],
  );
  const message = admitted
    ? `runs in concurrency group "${group.name}" (${running + 1} of at most ${group.limit})`
    : `waits in concurrency group "${group.name}" (at most ${group.limit} at once): place ${waiting + 1} in line`;
  return { admitted, note: { entity: "note", state: RunState.QUEUED, message } };
}

// A new run of `pipeline` in the line of its group, if it has one: whether
// it may start, and what the journal says of it.
export async function enterLine(client: PoolClient, runId: string, pipeline: Pipeline, branch = ""): Promise<{ admitted: boolean; notes: Change[] }> {
  const group = concurrencyGroupOf(pipeline, branch);
  if (!group) return { admitted: true, notes: [] };
  const { admitted, note } = await joinConcurrencyGroup(client, runId, group);
  return { admitted, notes: [note] };
}

export interface GroupPlace {
  name: string;
  limit: number;
  admitted: boolean;
  place: string;
}

// Admits a waiting run whose turn has come: fewer than `limit` runs of its
// group are admitted or ahead of it in line. The caller holds the run's lock.
export async function admitIfItsTurn(client: PoolClient, runId: string, group: GroupPlace): Promise<Change | undefined> {
  await lockGroup(client, group.name);
  const { rows } = await client.query(
    `SELECT count(*)::int AS before FROM coordinator.runs
     WHERE concurrency_group = $1 AND finished_at IS NULL AND id <> $2 AND (admitted OR group_place < $3)`,
    [group.name, runId, group.place],
  );
  if (rows[0].before >= group.limit) return undefined;
  await client.query("UPDATE coordinator.runs SET admitted = true WHERE id = $1", [runId]);
  return { entity: "note", state: RunState.QUEUED, message: `admitted by concurrency group "${group.name}"` };
}

// Waiting runs of the given shards whose turn has come, oldest first.
export async function runsWhoseTurnCame(client: Pick<PoolClient, "query">, shards: number[]): Promise<{ id: string; shard: number }[]> {
  const { rows } = await client.query(
    `SELECT r.id, r.shard FROM coordinator.runs r
     WHERE r.admitted = false AND r.finished_at IS NULL AND r.shard = ANY($1)
       AND (SELECT count(*) FROM coordinator.runs o WHERE o.concurrency_group = r.concurrency_group AND o.finished_at IS NULL AND o.id <> r.id
              AND (o.admitted OR o.group_place < r.group_place)) < r.concurrency_limit
     ORDER BY r.group_place LIMIT 50`,
    [shards],
  );
  return rows;
}

// A waiting run's place in its group's line (1: next), for "why a job waits".
export const placeInLineSql = `(SELECT count(*) + 1 FROM coordinator.runs o WHERE o.concurrency_group = r.concurrency_group
  AND o.finished_at IS NULL AND NOT o.admitted AND o.group_place < r.group_place)`;
