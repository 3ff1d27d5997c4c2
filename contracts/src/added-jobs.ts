// The rules of jobs added to a run while it runs (RunService.AddJobs), on
// top of those of each job: their names are new to the run, their needs name
// jobs of the run or of their own, and the run stays within its limit. The
// parser checks what it can see of these (with the run's job names), the
// coordinator all of them, against the run as it is when they are added.
import type { PipelineJob } from "@otto/gen/v1/pipeline_pb";
import { writtenJobName } from "./job-matrix.ts";
import { jobNameProblems, jobWhere, needsProblems, type PipelineProblem } from "./pipeline-rules.ts";

// A run's jobs, its pipeline's and those added to it, matrix expansions one
// by one. (A pipeline file, and a fragment of added jobs, has at most
// pipelineLimits.jobs.)
export const runJobLimit = 500;

/** The names jobs may need to mean the run's jobs: each job's name, and a matrix job's name as written. */
export function neededNames(runJobs: Iterable<string>): Set<string> {
  const names = new Set<string>();
  for (const name of runJobs) names.add(name).add(writtenJobName(name));
  return names;
}

/**
 * The problems of `added` (their paths ["jobs", i, ...] into it) as jobs of
 * a run that has the jobs `runJobs` already: a name used twice among them
 * or already the run's (a matrix job's as written), a need that names
 * neither one of them nor a job of the run, a cycle, and a run grown past
 * runJobLimit. Their own fields' problems are pipelineProblems' jobProblems.
 */
export function addedJobsProblems(runJobs: readonly string[], added: readonly Pick<PipelineJob, "name" | "needs">[]): PipelineProblem[] {
  const problems: PipelineProblem[] = [];
  const total = runJobs.length + added.length;
  if (total > runJobLimit) {
    problems.push({ path: ["jobs"], message: `the run would have ${total} jobs with these ${added.length}, at most ${runJobLimit} allowed` });
  }
  const taken = new Set(runJobs.map(writtenJobName));
  const reported = new Set<string>();
  added.forEach((job, j) => {
    const name = writtenJobName(job.name);
    if (!taken.has(name) || reported.has(name)) return;
    reported.add(name);
    problems.push({ path: ["jobs", j, "name"], message: `${jobWhere(name)} is already a job of the run; give the new job another name` });
  });
  problems.push(...jobNameProblems(added), ...needsProblems(added, neededNames(runJobs)));
  return problems;
}
