import { clone, create, equals, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { PipelineJobSchema, PipelineSchema, type Pipeline, type PipelineJob } from "@otto/gen/v1/pipeline_pb";
import { RunSourceSchema } from "@otto/gen/v1/run_pb";
import { addedJobsProblems } from "@otto/contracts/added-jobs";
import { writtenJobName } from "@otto/contracts/job-matrix";
import { jobCountProblem, jobProblems, type PipelineProblem } from "@otto/contracts/pipeline-rules";
import { runStateName } from "@otto/contracts/run-state";
import type { AddingStep } from "@otto/kit/adding-step";
import type { PoolClient } from "@otto/kit/db";
import { credentialGiven, jobsAtCommit } from "../projects/commit-jobs.ts";
import { advanceRun } from "./advance-run.ts";
import type { Change } from "./apply-changes.ts";
import { insertJobsAndStepsSql, pipelineRows, submittedRunFacts } from "./pipeline-rows.ts";
import { isFinal, RunState } from "./states.ts";
import { transitions } from "./transitions.ts";

export interface AddJobsRequest {
  runId: string;
  // The jobs to add (a pipeline with jobs and nothing else).
  fragment: Pipeline;
  // The step adding them: its job and attempt, from its step token.
  by: AddingStep;
  // Names the fragment in problems ("more.yml: ...").
  fileName: string;
}

export interface JobsAdded {
  added: string[];
  // Jobs of the fragment that the same job (any of its attempts) added
  // before, exactly as asked now: a retried job, or a retried call, adds
  // them again without harm.
  alreadyAdded: string[];
}

// Adds jobs to a run from a step of it, in the caller's transaction: under
// the run's lock, while the step's attempt is live and the run neither
// final nor being canceled, if the jobs keep the pipeline rules together
// with the run's (their needs may name the run's jobs; a run holds at most
// runJobLimit jobs). Their rows are stored, they join the run's pipeline
// (where a claim reads a job's steps), the journal says who added them, and
// the run advances: a job whose needs are done gets its task at once. All
// or nothing: a refusal adds no job.
export async function addJobs(client: PoolClient, request: AddJobsRequest): Promise<JobsAdded> {
  const { runId, fragment, by, fileName } = request;
  const problems = fragmentProblems(fragment);
  if (problems.length > 0) throw invalidJobs(problems, fragment.jobs, fileName);

  // Read after the lock is held, in a statement of its own: a statement that
  // waited for the lock would see the rows as they were before the wait.
  const { rowCount } = await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  if (rowCount === 0) throw new ConnectError(`run ${runId} not found`, Code.NotFound);
  const { rows } = await client.query(
    `SELECT r.state, r.cancel_requested, r.pipeline, r.source, t.status AS adder_status, t.attempt AS adder_attempt,
       (SELECT coalesce(json_object_agg(j.name, j.added_by), '{}') FROM coordinator.jobs j WHERE j.run_id = r.id AND j.added_by IS NOT NULL) AS added_by
     FROM coordinator.runs r LEFT JOIN coordinator.tasks t ON t.run_id = r.id AND t.job = $2 WHERE r.id = $1`,
    [runId, by.job],
  );
  const run = rows[0];
  if (isFinal(run.state)) throw new ConnectError(`run ${runId} is ${runStateName(run.state)}: jobs are added to a run only while it runs`, Code.FailedPrecondition);
  if (run.cancel_requested) throw new ConnectError(`run ${runId} is being canceled: no jobs are added to it`, Code.FailedPrecondition);
  if (run.adder_status !== "assigned" || run.adder_attempt !== by.attempt) {
    throw new ConnectError(
      `attempt ${by.attempt} of job ${by.job} in run ${runId} has ended: its step token adds jobs only while that attempt runs`,
      Code.FailedPrecondition,
    );
  }

  const pipeline = fromJson(PipelineSchema, run.pipeline as JsonValue);
  const source = run.source ? fromJson(RunSourceSchema, run.source as JsonValue) : undefined;
  const facts = source ? { branch: source.branch, event: source.event } : submittedRunFacts;
  // The jobs as they will be stored: needs of the run's matrix jobs
  // expanded, a project's commit checked out (jobsAtCommit), steps named.
  const jobs = create(PipelineSchema, { jobs: fragment.jobs.map((job) => clone(PipelineJobSchema, job)) });
  expandNeedsOfRunMatrices(jobs.jobs, pipeline.jobs);
  if (source) jobsAtCommit(jobs, source, credentialGiven(pipeline));
  pipelineRows(jobs, facts); // for the names it gives unnamed steps

  const runJobs = new Map(pipeline.jobs.map((job) => [job.name, job]));
  const addedBy = run.added_by as Record<string, AddingStep>;
  const isRepeat = (job: PipelineJob) => {
    const there = runJobs.get(job.name);
    return there !== undefined && addedBy[job.name]?.job === by.job && equals(PipelineJobSchema, there, job);
  };
  const repeats = jobs.jobs.filter(isRepeat);
  const added = jobs.jobs.filter((job) => !isRepeat(job));
  const combined = addedJobsProblems([...runJobs.keys()], added);
  if (combined.length > 0) throw invalidJobs(combined, added, fileName);
  if (added.length > 0) await store(client, runId, added, pipeline.jobs.length, facts, by);
  return { added: added.map((job) => job.name), alreadyAdded: repeats.map((job) => job.name) };
}

// What a fragment says wrong on its own: anything but jobs, too few or too
// many of them, and each job's own mistakes.
function fragmentProblems(fragment: Pipeline): PipelineProblem[] {
  const problems: PipelineProblem[] = [];
  if (fragment.name !== "" || fragment.concurrency) problems.push({ path: [], message: "a jobs fragment holds only 'jobs' (no 'name', no 'concurrency')" });
  const count = jobCountProblem(fragment.jobs.length);
  if (count) problems.push({ path: ["jobs"], message: count });
  fragment.jobs.forEach((job, j) => {
    for (const problem of jobProblems(job)) problems.push({ path: ["jobs", j, ...problem.path], message: problem.message });
  });
  return problems;
}

// A need naming a matrix job of the run as written ("test") means all its
// expansions, as within a pipeline file (needs without artifacts too).
function expandNeedsOfRunMatrices(jobs: PipelineJob[], runJobs: PipelineJob[]): void {
  const names = new Set([...jobs, ...runJobs].map((job) => job.name));
  const expansions = new Map<string, string[]>();
  for (const job of runJobs.filter((job) => job.matrix.length > 0)) {
    const written = writtenJobName(job.name);
    expansions.set(written, [...(expansions.get(written) ?? []), job.name]);
  }
  const expanded = (needs: string[]) => needs.flatMap((need) => (names.has(need) ? [need] : (expansions.get(need) ?? [need])));
  for (const job of jobs) {
    job.needs = expanded(job.needs);
    job.needsWithoutArtifacts = expanded(job.needsWithoutArtifacts);
  }
}

async function store(client: PoolClient, runId: string, jobs: PipelineJob[], before: number, facts: typeof submittedRunFacts, by: AddingStep): Promise<void> {
  const rows = pipelineRows(create(PipelineSchema, { jobs }), facts);
  const jobRows = rows.jobs.map((row) => ({ ...row, position: before + row.position }));
  await client.query(insertJobsAndStepsSql, [runId, JSON.stringify(jobRows), transitions.job.initial, JSON.stringify(rows.steps), transitions.step.initial]);
  const note = `added by job ${by.job}, attempt ${by.attempt}`;
  await client.query(
    `WITH run AS (
       UPDATE coordinator.runs SET pipeline = jsonb_set(pipeline, '{jobs}', coalesce(pipeline->'jobs', '[]'::jsonb) || $2::jsonb) WHERE id = $1
     )
     UPDATE coordinator.jobs SET added_by = $3, message = $4 WHERE run_id = $1 AND name = ANY($5)`,
    [runId, JSON.stringify(jobs.map((job) => toJson(PipelineJobSchema, job))), { job: by.job, attempt: by.attempt }, note, jobs.map((job) => job.name)],
  );
  const notes: Change[] = jobs.map((job) => ({ entity: "note", job: job.name, state: RunState.QUEUED, message: note }));
  await advanceRun(client, runId, { runLocked: true, changes: notes });
}

// The problems as lines, worded as the parser words them; without a place
// in the file to give, each names the job it is about.
function invalidJobs(problems: PipelineProblem[], jobs: readonly PipelineJob[], fileName: string): ConnectError {
  const lines = problems.map(({ path, message }) => {
    const job = path[0] === "jobs" && typeof path[1] === "number" ? jobs[path[1]]?.name : undefined;
    const about = job !== undefined && !message.includes(`'${job}'`) ? ` (job '${job}')` : "";
    return `${fileName}: ${message}${about}`;
  });
  return new ConnectError(lines.join("\n"), Code.InvalidArgument);
}
