import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { toJson } from "@bufbuild/protobuf";
import { PipelineSchema, type Pipeline } from "../../../../gen/otto/v1/pipeline_pb.ts";
import { deriveStepName } from "../../../parser/src/parse-pipeline.ts";
import { inTransaction, type Pool } from "../../../kit/src/db.ts";
import { traceParentOf } from "../../../kit/src/telemetry.ts";
import { applyChanges } from "./apply-changes.ts";
import { advanceRun } from "./advance-run.ts";
import { shardOf } from "../shards.ts";
import { RunState } from "./states.ts";
import { transitions } from "./transitions.ts";

export function stepName(name: string, run: string): string {
  return name.trim() !== "" ? name : deriveStepName(run);
}

// Stores a validated pipeline as a new QUEUED run and makes its first jobs ready.
export async function submitRun(
  pool: Pool,
  pipeline: Pipeline,
  maxActiveRuns: number,
  requestId: string,
): Promise<string> {
  const { rows } = await pool.query(
    `SELECT (SELECT id FROM coordinator.runs WHERE request_id = $1) AS existing,
       (SELECT count(*)::int FROM coordinator.runs WHERE finished_at IS NULL) AS active`,
    [requestId || null],
  );
  if (rows[0].existing) return rows[0].existing;
  if (rows[0].active >= maxActiveRuns) {
    throw new ConnectError(
      `${rows[0].active} runs are in progress, the most Otto accepts at once (OTTO_MAX_ACTIVE_RUNS); submit again when some have finished`,
      Code.ResourceExhausted,
    );
  }
  let runId = randomUUID();
  for (const job of pipeline.jobs) for (const step of job.steps) step.name = stepName(step.name, step.run);
  await inTransaction(pool, async (client) => {
    const { rowCount } = await client.query(
      `INSERT INTO coordinator.runs (id, name, state, pipeline, shard, request_id, traceparent) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (request_id) DO NOTHING`,
      [runId, pipeline.name, transitions.run.initial, toJson(PipelineSchema, pipeline), shardOf(runId), requestId || null, traceParentOf()],
    );
    if (!rowCount) {
      // The same request, retried while the first one was being stored.
      const { rows } = await client.query("SELECT id FROM coordinator.runs WHERE request_id = $1", [requestId]);
      runId = rows[0].id;
      return;
    }
    for (const [position, job] of pipeline.jobs.entries()) {
      await client.query(
        `INSERT INTO coordinator.jobs (run_id, name, position, state, needs, runs_on, locks, cpu, memory_bytes,
           retry_max, retry_exit_codes, retry_agent_lost)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
        [
          runId,
          job.name,
          position,
          transitions.job.initial,
          job.needs,
          job.runsOn,
          job.locks,
          job.resources?.cpu ?? 0,
          String(job.resources?.memoryBytes ?? 0n),
          job.retry?.max ?? 0,
          job.retry?.exitCodes ?? [],
          job.retry?.agentLost ?? null,
        ],
      );
      await client.query(
        `INSERT INTO coordinator.steps (run_id, job, position, name, state)
         SELECT $1, $2, p - 1, n, $4 FROM unnest($3::text[]) WITH ORDINALITY AS s(n, p)`,
        [runId, job.name, job.steps.map((s) => s.name), transitions.step.initial],
      );
    }
    await applyChanges(client, runId, [{ entity: "note", state: RunState.QUEUED, message: `run of "${pipeline.name}" submitted` }]);
    // The first advance happens right here, in the transaction that stores
    // the run: its first jobs are ready for agents the moment it commits.
    await advanceRun(client, runId, { runLocked: true });
  });
  return runId;
}
