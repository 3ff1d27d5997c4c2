import { toJson } from "@bufbuild/protobuf";
import { PipelineSchema, type Pipeline } from "@otto/gen/v1/pipeline_pb";
import type { PoolClient } from "@otto/kit/db";
import { lockRunWaitingForPipeline } from "./run-waiting-for-pipeline.ts";
import { advanceNewRun, newJobRow } from "./advance-run.ts";
import { enterLine } from "./concurrency-group.ts";
import { owePendingStatus } from "./commit-statuses.ts";
import { insertJobsAndStepsSql, pipelineRows, type RunFacts } from "./pipeline-rows.ts";
import { RunState } from "./states.ts";
import { transitions } from "./transitions.ts";

// Gives a project's run, made without jobs (start-project-run.ts), the
// pipeline read from its commit: its jobs and steps are stored and its first
// jobs made ready, and a `pending` status owed to its forge, in the caller's
// transaction. A run that is no longer waiting for its pipeline (canceled,
// failed, or given it by an earlier try of the same work) is left as it is;
// the answer says which happened.
export async function attachPipeline(client: PoolClient, runId: string, pipeline: Pipeline, note: string): Promise<"attached" | "not waiting"> {
  if (!(await lockRunWaitingForPipeline(client, runId))) return "not waiting";
  const facts = await factsOf(client, runId);
  const { jobs, steps } = pipelineRows(pipeline, facts);
  await client.query("UPDATE coordinator.runs SET name = $2, pipeline = $3 WHERE id = $1", [runId, pipeline.name, toJson(PipelineSchema, pipeline)]);
  await owePendingStatus(client, runId, `${pipeline.jobs.length} jobs queued`);
  await client.query(insertJobsAndStepsSql, [runId, JSON.stringify(jobs), transitions.job.initial, JSON.stringify(steps), transitions.step.initial]);
  const line = await enterLine(client, runId, pipeline, facts.branch);
  await advanceNewRun(
    client,
    runId,
    pipeline.jobs.map((job) => newJobRow(job, facts)),
    [{ entity: "note", state: RunState.QUEUED, message: note }, ...line.notes],
    false,
    line.admitted,
  );
  return "attached";
}

// A project's run's branch and event, from the commit's facts it was made with.
async function factsOf(client: PoolClient, runId: string): Promise<RunFacts> {
  const { rows } = await client.query(
    "SELECT coalesce(source->>'branch', '') AS branch, coalesce(source->>'event', '') AS event FROM coordinator.runs WHERE id = $1",
    [runId],
  );
  return { branch: rows[0]?.branch ?? "", event: rows[0]?.event ?? "" };
}
