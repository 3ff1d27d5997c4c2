import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { create, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RunSchema, type Run } from "@otto/gen/v1/run_pb";
import { PipelineSchema, type Pipeline } from "@otto/gen/v1/pipeline_pb";
import { inTransaction, type Pool } from "@otto/kit/db";
import { traceParentOf } from "@otto/kit/telemetry";
import { advanceNewRun, newJobRow } from "./advance-run.ts";
import { enterLine } from "./concurrency-group.ts";
import { jobColumns, jobRecord, jobValues, pipelineRows, submittedRunFacts } from "./pipeline-rows.ts";
import { shardOf } from "../shards.ts";
import { RunState } from "./states.ts";
import { transitions } from "./transitions.ts";

export interface Submitted {
  runId: string;
  // The run as stored, for a new run; a submit repeated with the same
  // request id finds the run it made before and leaves this undefined.
  created?: Run;
}

// Stores a validated pipeline as a new QUEUED run, its jobs and steps in one
// statement, and makes its first jobs ready in the same transaction.
export async function submitRun(pool: Pool, pipeline: Pipeline, maxActiveRuns: number, requestId: string): Promise<Submitted> {
  const runId = randomUUID();
  const { jobs, steps } = pipelineRows(pipeline, submittedRunFacts);
  return inTransaction(pool, async (client) => {
    // Stored unless the request was made before, or too many runs are in
    // progress; the statement says which.
    const { rows: stored } = await client.query(
      `WITH existing AS (
         SELECT id FROM coordinator.runs WHERE request_id = $6
       ), active AS (
         SELECT count(*)::int AS n FROM coordinator.runs WHERE finished_at IS NULL
       ), run AS (
         INSERT INTO coordinator.runs (id, name, state, pipeline, shard, request_id, traceparent)
         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (SELECT 1 FROM existing) AND (SELECT n FROM active) < $12
         ON CONFLICT (request_id) DO NOTHING RETURNING id, created_at
       ), jobs AS (
         INSERT INTO coordinator.jobs (run_id, name, position, state, ${jobColumns})
         SELECT run.id, j.name, j.position, $9, ${jobValues}
         FROM run, jsonb_to_recordset($8) AS j(${jobRecord})
       ), steps AS (
         INSERT INTO coordinator.steps (run_id, job, position, name, state)
         SELECT run.id, s.job, s.position, s.name, $11 FROM run, jsonb_to_recordset($10) AS s(job text, position int, name text)
       )
       SELECT (SELECT id FROM existing) AS existing, (SELECT n FROM active) AS active, (SELECT created_at FROM run) AS created_at`,
      [
        runId,
        pipeline.name,
        transitions.run.initial,
        toJson(PipelineSchema, pipeline),
        shardOf(runId),
        requestId || null,
        traceParentOf(),
        JSON.stringify(jobs),
        transitions.job.initial,
        JSON.stringify(steps),
        transitions.step.initial,
        maxActiveRuns,
      ],
    );
    const { existing, active, created_at: createdAt } = stored[0];
    if (existing) return { runId: existing };
    if (!createdAt && active >= maxActiveRuns) {
      throw new ConnectError(
        `${active} runs are in progress, the most Otto accepts at once (OTTO_MAX_ACTIVE_RUNS); submit again when some have finished`,
        Code.ResourceExhausted,
      );
    }
    if (!createdAt) {
      // The same request, retried while the first one was being stored.
      const { rows } = await client.query("SELECT id FROM coordinator.runs WHERE request_id = $1", [requestId]);
      return { runId: rows[0].id };
    }
    // The first advance happens right here, in the transaction that stores
    // the run, from the jobs as they were just stored: its first jobs are
    // ready for agents the moment it commits.
    const line = await enterLine(client, runId, pipeline);
    await advanceNewRun(
      client,
      runId,
      pipeline.jobs.map((job) => newJobRow(job, submittedRunFacts)),
      [{ entity: "note", state: RunState.QUEUED, message: `run of "${pipeline.name}" submitted` }, ...line.notes],
      true,
      line.admitted,
    );
    const created = create(RunSchema, {
      id: runId,
      name: pipeline.name,
      state: transitions.run.initial,
      createdAt: timestampFromDate(createdAt),
      jobs: pipeline.jobs.map((job) => ({
        name: job.name,
        state: transitions.job.initial,
        needs: job.needs,
        steps: job.steps.map((step) => ({ name: step.name, state: transitions.step.initial })),
      })),
    });
    return { runId, created };
  });
}
