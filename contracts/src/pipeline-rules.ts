// The rules of a pipeline beyond the shape of its fields, with the messages
// people read: the YAML parser, the coordinator and the SDK's builder all
// check these. Each problem has a path into the IR (field names and indexes,
// e.g. ["jobs", 2, "needs", 0]); the parser turns it into file:line:col.
import type { Pipeline, PipelineJob, PipelineStep } from "@otto/gen/v1/pipeline_pb";
import { artifactNameProblem } from "./artifact-name.ts";
import { concurrencyGroupProblem } from "./concurrency-group.ts";
import { parseCondition } from "./job-condition.ts";
import { expansionProblems, writtenJobName } from "./job-matrix.ts";
import { pipelineLimits as limits } from "./pipeline-limits.ts";
import { suggestion } from "./suggestion.ts";

export { pipelineLimits } from "./pipeline-limits.ts";

export type ProblemPath = readonly (string | number)[];

export interface PipelineProblem {
  path: ProblemPath;
  message: string;
}

/** Every problem of a pipeline IR, in the order of its fields. */
export function pipelineProblems(pipeline: Pipeline): PipelineProblem[] {
  const problems: PipelineProblem[] = [];
  const add = (path: ProblemPath, message: string | undefined) => {
    if (message !== undefined) problems.push({ path, message });
  };
  add(["name"], textProblem(pipeline.name, "for 'name'") ?? pipelineNameProblem(pipeline.name));
  add(["jobs"], jobCountProblem(pipeline.jobs.length));
  if (pipeline.concurrency) {
    add(["concurrency", "group"], concurrencyGroupProblem(pipeline.concurrency.group)?.message);
    add(["concurrency", "limit"], rangeProblem(pipeline.concurrency.limit, limits.concurrencyLimit, "for 'limit' in 'concurrency'"));
  }
  pipeline.jobs.forEach((job, j) => {
    for (const problem of jobProblems(job)) add(["jobs", j, ...problem.path], problem.message);
  });
  problems.push(...jobNameProblems(pipeline.jobs), ...needsProblems(pipeline.jobs));
  return problems;
}

/** A job's own problems (not those of its needs), each with its path from the job. */
export function jobProblems(job: PipelineJob): PipelineProblem[] {
  const problems: PipelineProblem[] = [];
  const add = (path: ProblemPath, message: string | undefined) => {
    if (message !== undefined) problems.push({ path, message });
  };
  const where = jobWhere(job.name);
  // An expansion of a matrix: its written name, then the rest of it.
  add(["name"], jobNameProblem(job.matrix.length > 0 ? writtenJobName(job.name) : job.name));
  for (const problem of expansionProblems(job)) add(problem.path, problem.message);
  job.runsOn.forEach((label, i) => add(["runsOn", i], textProblem(label, "in 'runs-on'")));
  for (const name of Object.keys(job.env)) add(["env", name], envNameProblem(name));
  if (job.retry) {
    add(["retry", "max"], rangeProblem(job.retry.max, limits.retries, "for 'max' in 'retry'"));
    job.retry.exitCodes.forEach((code, i) => add(["retry", "exitCodes", i], rangeProblem(code, limits.exitCodes, "in 'exit-codes'")));
  }
  for (const [field, what, max, problemOf] of nameLists) {
    for (const problem of nameListProblems(job[field], what, where, max, problemOf)) add([field, problem.index], problem.message);
  }
  for (const [name, limit] of Object.entries(job.lockLimits)) add(["lockLimits", name], lockLimitProblem(job, name, limit));
  if (job.resources) {
    add(["resources", "cpu"], cpuProblem(job.resources.cpu));
    if (job.resources.memoryBytes < 0n) add(["resources", "memory"], `bad memory quantity ${job.resources.memoryBytes}: must be more than 0`);
  }
  if (job.approval) add(["approval", "message"], approvalMessageProblem(job.approval.message));
  if (job.condition !== "") add(["condition"], conditionProblem(job.condition)); // empty: no condition
  for (const problem of needsWithoutArtifactsProblems(job)) add(["needsWithoutArtifacts", problem.index], problem.message);
  add(["steps"], stepCountProblem(job.steps.length, where));
  job.steps.forEach((step, s) => {
    for (const problem of stepProblems(step, stepWhere(s, where))) add(["steps", s, ...problem.path], problem.message);
  });
  return problems;
}

/** "job 'build'", as the messages name a job. */
export function jobWhere(name: string): string {
  return `job '${name}'`;
}

export function stepWhere(index: number, jobWhere: string): string {
  return `step ${index + 1} of ${jobWhere}`;
}

/** Text that must say something: not empty, not only spaces. */
export function textProblem(text: string, where: string): string | undefined {
  return text.trim() === "" ? `expected a non-empty string ${where}, got an empty string` : undefined;
}

export function pipelineNameProblem(name: string): string | undefined {
  const max = limits.pipelineNameChars;
  return name.length > max ? `the pipeline's name is too long: ${name.length} characters, at most ${max} allowed` : undefined;
}

export function jobCountProblem(count: number): string | undefined {
  if (count === 0) return "'jobs' is empty; define at least one job";
  if (count > limits.jobs) return `the pipeline has ${count} jobs, at most ${limits.jobs} allowed`;
  return undefined;
}

export function jobNameProblem(name: string): string | undefined {
  if (!limits.jobName.test(name)) return `invalid job name '${name}': use letters, digits, '_' and '-', starting with a letter or '_'`;
  if (name.length > limits.jobNameChars) return `job name '${name}' is too long: ${name.length} characters, at most ${limits.jobNameChars} allowed`;
  return undefined;
}

export function envNameProblem(name: string): string | undefined {
  return limits.envName.test(name) ? undefined : `invalid environment variable name '${name}': use letters, digits and '_', not starting with a digit`;
}

export function stepCountProblem(count: number, where: string): string | undefined {
  if (count === 0) return `${where} has no steps; 'steps' needs at least one`;
  if (count > limits.steps) return `${where} has ${count} steps, at most ${limits.steps} allowed`;
  return undefined;
}

/** A step's own problems, each with its path from the step. */
export function stepProblems(step: PipelineStep, where: string): PipelineProblem[] {
  const problems: PipelineProblem[] = [];
  const add = (path: ProblemPath, message: string | undefined) => {
    if (message !== undefined) problems.push({ path, message });
  };
  add(["run"], textProblem(step.run, "for 'run'") ?? runProblem(step.run, where));
  add(["name"], stepNameProblem(step.name, where)); // an empty name is derived from 'run'

  if (step.timeout && (step.timeout.seconds < 0n || step.timeout.nanos < 0)) add(["timeout"], `the timeout of ${where} is negative`);
  for (const name of Object.keys(step.env)) add(["env", name], envNameProblem(name));
  return problems;
}

export function runProblem(run: string, where: string): string | undefined {
  const bytes = new TextEncoder().encode(run).byteLength;
  return bytes > limits.runBytes ? `'run' of ${where} is ${bytes} bytes, at most ${limits.runBytes} allowed` : undefined;
}

export function stepNameProblem(name: string, where: string): string | undefined {
  const max = limits.stepNameChars;
  return name.length > max ? `the name of ${where} is too long: ${name.length} characters, at most ${max} allowed` : undefined;
}

export function rangeProblem(value: number, range: { min: number; max: number }, where: string): string | undefined {
  return Number.isInteger(value) && value >= range.min && value <= range.max ? undefined : `expected an integer from ${range.min} to ${range.max} ${where}, got ${value}`;
}

export function approvalMessageProblem(message: string): string | undefined {
  const max = limits.approvalMessageChars;
  return message.length > max ? `an approval's message is at most ${max} characters, got ${message.length}` : undefined;
}

/** A job's `if` expression; the parser also places the problem at its column (parseCondition's offset). */
export function conditionProblem(text: string): string | undefined {
  const parsed = parseCondition(text);
  return parsed.ok ? undefined : parsed.message;
}

export function cpuProblem(cpu: number): string | undefined {
  return cpu >= 0 && cpu <= limits.cpu ? undefined : `expected a number of cores above 0 and at most ${limits.cpu} for 'cpu', got ${cpu}`;
}

export function lockNameProblem(name: string): string | undefined {
  if (!limits.lockName.test(name)) return `invalid lock name '${name}': use letters, digits, '.', '_', '/' and '-', starting with a letter or digit`;
  if (name.length > limits.lockNameChars) return `lock name '${name}' is too long: ${name.length} characters, at most ${limits.lockNameChars} allowed`;
  return undefined;
}

/** A limit of how many jobs hold a lock at once: of a lock the job names, in range. */
export function lockLimitProblem(job: Pick<PipelineJob, "locks">, name: string, limit: number): string | undefined {
  if (!job.locks.includes(name)) return `a limit is given for lock '${name}', which the job does not name in 'locks'`;
  return rangeProblem(limit, limits.lockLimit, `for the 'limit' of lock '${name}'`);
}

export function secretNameProblem(name: string): string | undefined {
  return limits.secretName.test(name) && name.length <= limits.secretNameChars
    ? undefined
    : `invalid secret name '${name}': use upper-case letters, digits and '_', not starting with a digit (at most ${limits.secretNameChars})`;
}

type NameField = "locks" | "secrets" | "artifacts";
export const nameLists: [NameField, string, number, (name: string) => string | undefined][] = [
  ["locks", "lock", limits.locks, lockNameProblem],
  ["secrets", "secret", limits.secrets, secretNameProblem],
  ["artifacts", "artifact", limits.artifacts, artifactNameProblem],
];

/** A job's list of names (locks, secrets, artifacts): each valid, listed once, at most `max` of them. */
export function nameListProblems(
  names: readonly string[],
  what: string,
  where: string,
  max: number,
  problemOf: (name: string) => string | undefined,
): { index: number; message: string }[] {
  const problems: { index: number; message: string }[] = [];
  const kept: number[] = [];
  names.forEach((name, index) => {
    const problem = problemOf(name);
    if (problem) problems.push({ index, message: problem });
    else if (kept.some((k) => names[k] === name)) problems.push({ index, message: `${what} '${name}' is listed twice in the ${what}s of ${where}` });
    else kept.push(index);
  });
  if (kept.length > max) problems.push({ index: kept[max], message: `${where} has ${kept.length} ${what}s, at most ${max} allowed` });
  return problems;
}

/** A job defined twice, at the second one. */
export function jobNameProblems(jobs: readonly Pick<PipelineJob, "name">[]): PipelineProblem[] {
  const seen = new Set<string>();
  const problems: PipelineProblem[] = [];
  jobs.forEach((job, j) => {
    if (seen.has(job.name)) problems.push({ path: ["jobs", j, "name"], message: `${jobWhere(job.name)} is defined twice` });
    seen.add(job.name);
  });
  return problems;
}

/**
 * Unknown, self, duplicate and cyclic needs, each at the need. `others`:
 * jobs beside these that they may need too (a run's, for jobs added to it),
 * which need none of these, so no cycle passes through them.
 */
export function needsProblems(jobs: readonly Pick<PipelineJob, "name" | "needs">[], others: ReadonlySet<string> = new Set()): PipelineProblem[] {
  const problems: PipelineProblem[] = [];
  const names = new Set(jobs.map((job) => job.name));
  const edges = new Map<string, { job: number; need: number; name: string }[]>();
  jobs.forEach((job, j) => {
    const seen = new Set<string>();
    const valid: { job: number; need: number; name: string }[] = [];
    job.needs.forEach((need, n) => {
      const path = ["jobs", j, "needs", n];
      if (need === job.name) problems.push({ path, message: `${jobWhere(job.name)} needs itself; remove '${need}' from its needs` });
      else if (!names.has(need) && !others.has(need)) problems.push({ path, message: `unknown job '${need}' in needs${suggestion(need, [...names, ...others])}` });
      else if (seen.has(need)) problems.push({ path, message: `job '${need}' is listed twice in the needs of '${job.name}'` });
      else valid.push({ job: j, need: n, name: need });
      seen.add(need);
    });
    if (!edges.has(job.name)) edges.set(job.name, valid);
  });
  // Depth-first search in the order of the jobs: a need that points back at a
  // job on the current path closes a cycle. Removing all such needs breaks every cycle.
  const done = new Set<string>();
  const path: string[] = [];
  const walk = (name: string): void => {
    path.push(name);
    for (const need of edges.get(name) ?? []) {
      const start = path.indexOf(need.name);
      if (start >= 0) problems.push({ path: ["jobs", need.job, "needs", need.need], message: `cycle in needs: ${[...path.slice(start), need.name].join(" -> ")}` });
      else if (!done.has(need.name)) walk(need.name);
    }
    path.pop();
    done.add(name);
  };
  for (const job of jobs) if (!done.has(job.name)) walk(job.name);
  return problems;
}

/** The needs a job goes without the artifacts of (`{job: build, artifacts: false}`): each one of its needs, once. */
export function needsWithoutArtifactsProblems(job: Pick<PipelineJob, "name" | "needs" | "needsWithoutArtifacts">): { index: number; message: string }[] {
  const problems: { index: number; message: string }[] = [];
  job.needsWithoutArtifacts.forEach((need, index) => {
    if (!job.needs.includes(need)) problems.push({ index, message: `${jobWhere(job.name)} goes without the artifacts of '${need}', which is not among its needs` });
    else if (job.needsWithoutArtifacts.indexOf(need) !== index) problems.push({ index, message: `job '${need}' is listed twice in the needs without artifacts of '${job.name}'` });
  });
  return problems;
}

/** One message a line. */
export function formatPipelineProblems(problems: readonly PipelineProblem[]): string {
  return problems.map((problem) => problem.message).join("\n");
}
