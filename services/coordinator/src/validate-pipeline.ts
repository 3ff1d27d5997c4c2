import { Code, ConnectError } from "@connectrpc/connect";
import type { Pipeline } from "../../../gen/otto/v1/pipeline_pb.ts";
import { artifactNameProblem } from "../../kit/src/artifact-name.ts";

const jobNamePattern = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
const secretNamePattern = /^[A-Z_][A-Z0-9_]{0,127}$/;
const lockNamePattern = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,99}$/;
export const limits = { jobs: 200, stepsPerJob: 100, runBytes: 64 * 1024, nameChars: 200 };

// The rules every pipeline IR must satisfy, whichever way it was made (the
// YAML parser or the SDK's builder). Reports every problem at once.
export function pipelineProblems(pipeline: Pipeline): string[] {
  const problems: string[] = [];
  if (pipeline.name.trim() === "") problems.push("pipeline name is empty");
  if (pipeline.name.length > limits.nameChars) problems.push(`pipeline name is longer than ${limits.nameChars} characters`);
  if (pipeline.jobs.length === 0) problems.push("pipeline has no jobs");
  if (pipeline.jobs.length > limits.jobs) problems.push(`pipeline has ${pipeline.jobs.length} jobs; at most ${limits.jobs} allowed`);
  const names = new Set<string>();
  for (const job of pipeline.jobs) {
    const where = `job "${job.name}"`;
    if (!jobNamePattern.test(job.name)) problems.push(`${where}: job names must match ${jobNamePattern.source}`);
    if (names.has(job.name)) problems.push(`${where}: defined twice`);
    names.add(job.name);
    if (job.steps.length === 0) problems.push(`${where}: has no steps`);
    if (job.steps.length > limits.stepsPerJob) problems.push(`${where}: more than ${limits.stepsPerJob} steps`);
    for (const key of Object.keys(job.env)) {
      if (!envNamePattern.test(key)) problems.push(`${where}: env name "${key}" is not a valid variable name`);
    }
    if (job.locks.length > 10) problems.push(`${where}: more than 10 locks`);
    for (const lock of job.locks) {
      if (!lockNamePattern.test(lock)) problems.push(`${where}: lock name "${lock}" must match ${lockNamePattern.source}`);
    }
    if (new Set(job.locks).size !== job.locks.length) problems.push(`${where}: a lock is named twice`);
    if (job.secrets.length > 50) problems.push(`${where}: more than 50 secrets`);
    for (const secret of job.secrets) {
      if (!secretNamePattern.test(secret)) problems.push(`${where}: secret name "${secret}" must match ${secretNamePattern.source}`);
    }
    if (new Set(job.secrets).size !== job.secrets.length) problems.push(`${where}: a secret is named twice`);
    if (job.artifacts.length > 100) problems.push(`${where}: more than 100 artifacts`);
    for (const artifact of job.artifacts) {
      const problem = artifactNameProblem(artifact);
      if (problem) problems.push(`${where}: ${problem}`);
    }
    if (new Set(job.artifacts).size !== job.artifacts.length) problems.push(`${where}: an artifact is named twice`);
    if (job.retry) {
      if (job.retry.max < 0 || job.retry.max > 10) problems.push(`${where}: retry max must be between 0 and 10`);
      if (job.retry.exitCodes.some((c) => c < 0 || c > 255)) problems.push(`${where}: retry exit codes must be 0 to 255`);
    }
    if (job.resources) {
      const { cpu, memoryBytes } = job.resources;
      if (!(cpu >= 0 && cpu <= 1024)) problems.push(`${where}: cpu must be between 0 and 1024`);
      if (memoryBytes < 0n) problems.push(`${where}: memory must not be negative`);
    }
    job.steps.forEach((step, i) => {
      const stepWhere = `${where} step ${i + 1}`;
      if (step.run.trim() === "") problems.push(`${stepWhere}: run is empty`);
      if (Buffer.byteLength(step.run) > limits.runBytes) problems.push(`${stepWhere}: run is larger than 64 KiB`);
      if (step.name.length > limits.nameChars) problems.push(`${stepWhere}: name is too long`);
      if (step.timeout && (step.timeout.seconds < 0n || step.timeout.nanos < 0)) {
        problems.push(`${stepWhere}: timeout is negative`);
      }
      for (const key of Object.keys(step.env)) {
        if (!envNamePattern.test(key)) problems.push(`${stepWhere}: env name "${key}" is not a valid variable name`);
      }
    });
  }
  for (const job of pipeline.jobs) {
    for (const need of job.needs) {
      if (!names.has(need)) problems.push(`job "${job.name}": needs unknown job "${need}"`);
      if (need === job.name) problems.push(`job "${job.name}": needs itself`);
    }
  }
  const cycle = findCycle(pipeline);
  if (cycle) problems.push(`cycle in needs: ${cycle.join(" -> ")}`);
  return problems;
}

export function assertValidPipeline(pipeline: Pipeline | undefined): asserts pipeline is Pipeline {
  if (!pipeline) throw new ConnectError("pipeline is required", Code.InvalidArgument);
  const problems = pipelineProblems(pipeline);
  if (problems.length > 0) {
    throw new ConnectError(`invalid pipeline:\n${problems.join("\n")}`, Code.InvalidArgument);
  }
}

function findCycle(pipeline: Pipeline): string[] | undefined {
  const needs = new Map(pipeline.jobs.map((j) => [j.name, j.needs.filter((n) => n !== j.name)]));
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === "done") return undefined;
    if (state.get(name) === "visiting") return [...path.slice(path.indexOf(name)), name];
    state.set(name, "visiting");
    path.push(name);
    for (const next of needs.get(name) ?? []) {
      const found = visit(next);
      if (found) return found;
    }
    path.pop();
    state.set(name, "done");
    return undefined;
  };
  for (const name of needs.keys()) {
    const found = visit(name);
    if (found) return found;
  }
  return undefined;
}
