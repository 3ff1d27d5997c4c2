import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunEventSchema, RunJobSchema, RunSchema, RunStepSchema, type Run, type RunEvent } from "../../../gen/otto/v1/run_pb.ts";
import type { Pool, PoolClient } from "../../kit/src/db.ts";

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

export async function loadRuns(db: Queryable, ids: string[]): Promise<Run[]> {
  if (ids.length === 0) return [];
  const [runs, jobs, steps] = await Promise.all([
    db.query("SELECT * FROM coordinator.runs WHERE id = ANY($1)", [ids]),
    db.query(
      `SELECT j.*, coalesce(t.attempt, 0) AS attempt FROM coordinator.jobs j
       LEFT JOIN coordinator.tasks t ON t.run_id = j.run_id AND t.job = j.name
       WHERE j.run_id = ANY($1) ORDER BY j.position`,
      [ids],
    ),
    db.query("SELECT * FROM coordinator.steps WHERE run_id = ANY($1) ORDER BY position", [ids]),
  ]);
  const byId = new Map<string, Run>();
  for (const row of runs.rows) {
    byId.set(
      row.id,
      create(RunSchema, {
        id: row.id,
        name: row.name,
        state: row.state,
        createdAt: ts(row.created_at),
        startedAt: ts(row.started_at),
        finishedAt: ts(row.finished_at),
      }),
    );
  }
  for (const row of jobs.rows) {
    byId.get(row.run_id)?.jobs.push(
      create(RunJobSchema, {
        name: row.name,
        state: row.state,
        needs: row.needs,
        message: row.message,
        agentId: row.agent_id,
        attempt: row.attempt,
        startedAt: ts(row.started_at),
        finishedAt: ts(row.finished_at),
      }),
    );
  }
  for (const row of steps.rows) {
    const job = byId.get(row.run_id)?.jobs.find((j) => j.name === row.job);
    job?.steps.push(
      create(RunStepSchema, {
        name: row.name,
        state: row.state,
        exitCode: row.exit_code ?? undefined,
        startedAt: ts(row.started_at),
        finishedAt: ts(row.finished_at),
      }),
    );
  }
  return ids.map((id) => byId.get(id)).filter((r): r is Run => r !== undefined);
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

function ts(date: Date | null) {
  return date ? timestampFromDate(date) : undefined;
}
