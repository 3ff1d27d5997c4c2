import type { Pipeline } from "@otto/gen/v1/pipeline_pb";
import { deriveStepName } from "@otto/contracts/step-name";
import type { StoredCondition } from "./job-gate.ts";

// What a job's condition may read of its run: its branch and the event that
// made it ("api" for a run submitted directly).
export interface RunFacts {
  branch: string;
  event: string;
}

export const submittedRunFacts: RunFacts = { branch: "", event: "api" };

// A job's condition as it is stored with the job.
export function storedCondition(job: Pipeline["jobs"][number], facts: RunFacts): StoredCondition | null {
  return job.condition ? { text: job.condition, branch: facts.branch, event: facts.event, env: job.env } : null;
}

function stepName(name: string, run: string): string {
  return name.trim() !== "" ? name : deriveStepName(run);
}

// A pipeline's jobs and steps as rows of coordinator.jobs and
// coordinator.steps (JSON for jsonb_to_recordset); unnamed steps are named
// here, in the pipeline too.
export function pipelineRows(pipeline: Pipeline, facts: RunFacts) {
  for (const job of pipeline.jobs) for (const step of job.steps) step.name = stepName(step.name, step.run);
  const jobs = pipeline.jobs.map((job, position) => ({
    name: job.name,
    position,
    needs: job.needs,
    runs_on: job.runsOn,
    locks: job.locks,
    lock_limits: job.lockLimits,
    cpu: job.resources?.cpu ?? 0,
    memory_bytes: String(job.resources?.memoryBytes ?? 0n),
    retry_max: job.retry?.max ?? 0,
    retry_exit_codes: job.retry?.exitCodes ?? [],
    retry_agent_lost: job.retry?.agentLost ?? null,
    approval: job.approval ? job.approval.message : null,
    approval_timeout_ms: approvalTimeoutMs(job),
    condition: storedCondition(job, facts),
  }));
  const steps = pipeline.jobs.flatMap((job) => job.steps.map((step, position) => ({ job: job.name, position, name: step.name })));
  return { jobs, steps };
}

// The columns a job row gets from its pipeline job, as jsonb_to_recordset
// reads them (submit-run.ts stores a new run's jobs with the same).
export const jobColumns = "needs, runs_on, locks, lock_limits, cpu, memory_bytes, retry_max, retry_exit_codes, retry_agent_lost, approval, approval_timeout_ms, condition";
export const jobValues = "j.needs, j.runs_on, j.locks, j.lock_limits, j.cpu, j.memory_bytes, j.retry_max, j.retry_exit_codes, j.retry_agent_lost, j.approval, j.approval_timeout_ms, j.condition";
export const jobRecord = `name text, position int, needs text[], runs_on text[], locks text[], lock_limits jsonb, cpu float8, memory_bytes bigint, retry_max int,
  retry_exit_codes int[], retry_agent_lost boolean, approval text, approval_timeout_ms bigint, condition jsonb`;

const defaultApprovalTimeoutMs = 24 * 3600 * 1000;

export function approvalTimeoutMs(job: Pipeline["jobs"][number]): number {
  const timeout = job.approval?.timeout;
  const ms = timeout ? Number(timeout.seconds) * 1000 + Math.floor(timeout.nanos / 1e6) : 0;
  return ms > 0 ? ms : defaultApprovalTimeoutMs;
}

// Inserting them, for the run $1: jobs from $2 in state $3, steps from $4 in state $5.
export const insertJobsAndStepsSql = `WITH jobs AS (
  INSERT INTO coordinator.jobs (run_id, name, position, state, ${jobColumns})
  SELECT $1, j.name, j.position, $3, ${jobValues}
  FROM jsonb_to_recordset($2) AS j(${jobRecord})
)
INSERT INTO coordinator.steps (run_id, job, position, name, state)
SELECT $1, s.job, s.position, s.name, $5 FROM jsonb_to_recordset($4) AS s(job text, position int, name text)`;
