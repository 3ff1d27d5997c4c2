import { randomUUID } from "node:crypto";
import { fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import { PipelineSchema, type PipelineJob } from "@otto/gen/v1/pipeline_pb";
import { RunSourceSchema } from "@otto/gen/v1/run_pb";
import type { PoolClient } from "@otto/kit/db";
import { traceParentOf } from "@otto/kit/telemetry";
import { runStateName } from "@otto/contracts/run-state";
import { advanceNewRun, newJobRow } from "./advance-run.ts";
import { enterLine } from "./concurrency-group.ts";
import type { Change } from "./apply-changes.ts";
import { owePendingStatus } from "./commit-statuses.ts";
import { insertJobsAndStepsSql, pipelineRows, submittedRunFacts } from "./pipeline-rows.ts";
import { numberNextRun, requireRoomForRun, startProjectRun } from "./start-project-run.ts";
import { shardOf } from "../shards.ts";
import { isFinal, RunState } from "./states.ts";
import { transitions } from "./transitions.ts";

// Makes a new run of a finished run's pipeline (and, for a project's run,
// of its commit, under the project's next number), linked by `rerun_of`.
// With `failedOnly`, each job that SUCCEEDED in the old run moves straight
// to SUCCEEDED in the new one, "reused", and only the rest run, as their
// needs allow. A project's run that never got its jobs reads its pipeline
// file again. Jobs a step added to the old run come again only with the
// job that added them reused: one that runs again adds them again.
export async function rerunRun(
  client: PoolClient,
  boss: PgBoss,
  request: { runId: string; failedOnly: boolean; maxActiveRuns: number },
): Promise<string> {
  const { runId, failedOnly } = request;
  const { rows } = await client.query("SELECT name, state, pipeline, project, source FROM coordinator.runs WHERE id = $1 FOR SHARE", [runId]);
  const old = rows[0];
  if (!old) throw new ConnectError(`run ${runId} not found`, Code.NotFound);
  if (!isFinal(old.state)) {
    throw new ConnectError(`run ${runId} is ${runStateName(old.state)}: rerun it once it has finished (or cancel it first)`, Code.FailedPrecondition);
  }
  // Where each job's result was made: its own attempt, or, for a job this
  // run reused in turn, the run and attempt it was reused from.
  const { rows: jobs } = await client.query(
    `SELECT j.name, j.state, j.added_by->>'job' AS added_by, coalesce(j.reused_from_run, j.run_id) AS run, coalesce(j.reused_from_attempt, t.attempt, 0) AS attempt
     FROM coordinator.jobs j LEFT JOIN coordinator.tasks t ON t.run_id = j.run_id AND t.job = j.name WHERE j.run_id = $1`,
    [runId],
  );
  const succeeded = new Map<string, { run: string; attempt: number }>(
    failedOnly ? jobs.filter((j) => j.state === RunState.SUCCEEDED).map((j) => [j.name, { run: j.run, attempt: j.attempt }]) : [],
  );
  if (failedOnly && jobs.length > 0 && succeeded.size === jobs.length) {
    throw new ConnectError(`every job of run ${runId} succeeded: nothing failed to run again (rerun it without failed_only to run it all)`, Code.FailedPrecondition);
  }
  const source = old.source ? fromJson(RunSourceSchema, old.source as JsonValue) : undefined;
  if (jobs.length === 0 && source) {
    // It failed before it had jobs: its commit's pipeline file is read again.
    const { $typeName: _, project, number: __, repoUrl: ___, ...rest } = source;
    const started = await startProjectRun(client, boss, { project, source: rest, requestId: "", maxActiveRuns: request.maxActiveRuns });
    await client.query("UPDATE coordinator.runs SET rerun_of = $2 WHERE id = $1", [started.runId, runId]);
    return started.runId;
  }
  await requireRoomForRun(client, request.maxActiveRuns);
  const pipeline = fromJson(PipelineSchema, old.pipeline as JsonValue);
  const addedBy = new Map<string, string>(jobs.filter((j) => j.added_by !== null).map((j) => [j.name, j.added_by]));
  pipeline.jobs = jobsAgain(pipeline.jobs, addedBy, succeeded);
  const again = new Set(pipeline.jobs.map((job) => job.name));
  const reused = new Map([...succeeded].filter(([name]) => again.has(name)));
  const newSource = source && { ...source, number: (await numberNextRun(client, source.project)).number };
  const newId = randomUUID();
  await client.query(
    `INSERT INTO coordinator.runs (id, name, state, pipeline, shard, traceparent, project, source, rerun_of)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [newId, old.name, transitions.run.initial, toJson(PipelineSchema, pipeline), shardOf(newId), traceParentOf(), old.project, newSource ? toJson(RunSourceSchema, newSource) : null, runId],
  );
  const facts = newSource ? { branch: newSource.branch, event: newSource.event } : submittedRunFacts;
  const rows_ = pipelineRows(pipeline, facts);
  await client.query(insertJobsAndStepsSql, [newId, JSON.stringify(rows_.jobs), transitions.job.initial, JSON.stringify(rows_.steps), transitions.step.initial]);
  if (pipeline.jobs.some((job) => addedBy.has(job.name))) {
    await client.query(
      `UPDATE coordinator.jobs j SET added_by = o.added_by FROM coordinator.jobs o
       WHERE j.run_id = $1 AND o.run_id = $2 AND o.name = j.name AND o.added_by IS NOT NULL`,
      [newId, runId],
    );
  }
  const changes: Change[] = [
    { entity: "note", state: RunState.QUEUED, message: `rerun of run ${runId}${failedOnly ? ` (what did not succeed: ${reused.size} of ${pipeline.jobs.length} jobs reused)` : ""}` },
  ];
  for (const job of pipeline.jobs) {
    const from = reused.get(job.name);
    if (from === undefined) continue;
    changes.push({ entity: "job", job: job.name, from: RunState.QUEUED, to: RunState.SUCCEEDED, message: `reused from run ${from.run}, attempt ${from.attempt}` });
    job.steps.forEach((step, position) => changes.push({ entity: "step", job: job.name, position, name: step.name, from: RunState.QUEUED, to: RunState.SUCCEEDED }));
  }
  // Its dependents get the artifacts of that attempt (artifact-sources.ts).
  if (reused.size > 0) {
    await client.query(
      `UPDATE coordinator.jobs j SET reused_from_run = r.run, reused_from_attempt = r.attempt
       FROM jsonb_to_recordset($2::jsonb) AS r(name text, run uuid, attempt int) WHERE j.run_id = $1 AND j.name = r.name`,
      [newId, JSON.stringify([...reused].map(([name, from]) => ({ name, ...from })))],
    );
  }
  await owePendingStatus(client, newId, `rerun of run ${runId}`);
  const line = await enterLine(client, newId, pipeline, newSource?.branch);
  await advanceNewRun(
    client,
    newId,
    pipeline.jobs.map((job) => ({ ...newJobRow(job, facts), state: reused.has(job.name) ? RunState.SUCCEEDED : transitions.job.initial })),
    [...changes, ...line.notes],
    false,
    line.admitted,
  );
  return newId;
}

// The old run's jobs that the new run has: its pipeline's, and those a step
// added whose adding job is reused (`reused`: the jobs that SUCCEEDED, when
// only the rest run again), along with the jobs they need.
function jobsAgain(jobs: PipelineJob[], addedBy: ReadonlyMap<string, string>, reused: ReadonlyMap<string, unknown>): PipelineJob[] {
  const kept = new Set<string>();
  return jobs.filter((job) => {
    const adder = addedBy.get(job.name);
    const keep = adder === undefined || (kept.has(adder) && reused.has(adder) && job.needs.every((need) => kept.has(need)));
    if (keep) kept.add(job.name);
    return keep;
  });
}
