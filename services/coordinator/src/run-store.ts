import { create, fromJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunEventSchema, RunJobSchema, RunSchema, RunSourceSchema, RunStepSchema, type Run, type RunEvent, type RunState } from "@otto/gen/v1/run_pb";
import type { Pool, PoolClient } from "@otto/kit/db";

type Queryable = Pool | PoolClient;
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function requireRunId(runId: string): void {
  if (!uuidPattern.test(runId)) {
    throw new ConnectError(`run_id must be a run's UUID, got "${runId}"`, Code.InvalidArgument);
  }
}

export async function loadRun(db: Queryable, runId: string): Promise<Run> {
  requireRunId(runId);
  const runs = await loadRuns(db, [runId]);
  if (runs.length === 0) throw new ConnectError(`run ${runId} not found`, Code.NotFound);
  return runs[0];
}

// Runs with their jobs and steps, read in one statement (a consistent
// snapshot, one round trip), in the order of `ids`.
export async function loadRuns(db: Queryable, ids: string[]): Promise<Run[]> {
  if (ids.length === 0) return [];
  const { rows } = await db.query(
    `SELECT r.id, r.name, r.state, r.created_at, r.started_at, r.finished_at, r.message, r.source, r.rerun_of,
       coalesce((
         SELECT json_agg(json_build_object(
           'name', j.name, 'state', j.state, 'needs', j.needs, 'message', j.message, 'agent_id', j.agent_id,
           'attempt', coalesce(t.attempt, 0), 'started_at', j.started_at, 'finished_at', j.finished_at,
           'steps', coalesce((
             SELECT json_agg(json_build_object('name', s.name, 'state', s.state, 'exit_code', s.exit_code,
               'started_at', s.started_at, 'finished_at', s.finished_at) ORDER BY s.position)
             FROM coordinator.steps s WHERE s.run_id = j.run_id AND s.job = j.name), '[]'::json)
         ) ORDER BY j.position)
         FROM coordinator.jobs j LEFT JOIN coordinator.tasks t ON t.run_id = j.run_id AND t.job = j.name
         WHERE j.run_id = r.id), '[]'::json) AS jobs
     FROM coordinator.runs r WHERE r.id = ANY($1)`,
    [ids],
  );
  const byId = new Map<string, Run>();
  for (const row of rows) {
    byId.set(
      row.id,
      create(RunSchema, {
        id: row.id,
        name: row.name,
        state: row.state,
        createdAt: ts(row.created_at),
        startedAt: ts(row.started_at),
        finishedAt: ts(row.finished_at),
        message: row.message,
        rerunOf: row.rerun_of ?? "",
        source: row.source ? fromJson(RunSourceSchema, row.source) : undefined,
        jobs: (row.jobs as JobJson[]).map((job) =>
          create(RunJobSchema, {
            name: job.name,
            state: job.state,
            needs: job.needs,
            message: job.message,
            agentId: job.agent_id,
            attempt: job.attempt,
            startedAt: ts(job.started_at),
            finishedAt: ts(job.finished_at),
            steps: job.steps.map((step) =>
              create(RunStepSchema, {
                name: step.name,
                state: step.state,
                exitCode: step.exit_code ?? undefined,
                startedAt: ts(step.started_at),
                finishedAt: ts(step.finished_at),
              }),
            ),
          }),
        ),
      }),
    );
  }
  return ids.map((id) => byId.get(id)).filter((r): r is Run => r !== undefined);
}

interface JobJson {
  name: string;
  state: RunState;
  needs: string[];
  message: string;
  agent_id: string;
  attempt: number;
  started_at: string | null;
  finished_at: string | null;
  steps: { name: string; state: RunState; exit_code: number | null; started_at: string | null; finished_at: string | null }[];
}

export function journalRowToEvent(row: Record<string, any>): RunEvent {
  return create(RunEventSchema, {
    runId: row.run_id,
    seq: BigInt(row.seq),
    time: ts(row.at),
    job: row.job,
    step: row.step,
    state: row.state,
    exitCode: row.exit_code ?? undefined,
    message: row.message,
  });
}

// Timestamps come as Dates from columns and as text from JSON.
function ts(date: Date | string | null) {
  return date ? timestampFromDate(typeof date === "string" ? new Date(date) : date) : undefined;
}
