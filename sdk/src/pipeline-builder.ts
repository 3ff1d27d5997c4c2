import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { ApprovalSchema,
  ConcurrencySchema,
  PipelineJobSchema,
  PipelineSchema,
  PipelineStepSchema,
  type Pipeline,
  type PipelineJob,
} from "@otto/gen/v1/pipeline_pb";
import { parseDuration } from "@otto/contracts/duration";
import {
  expandedJobCountProblem,
  expandJobs,
  expandMatrix,
  matrixEnvProblem,
  matrixReferenceProblem,
  type Matrix,
  type MatrixExpansion,
} from "@otto/contracts/job-matrix";
import { conditionProblem, formatPipelineProblems, jobCountProblem, pipelineProblems, type PipelineProblem } from "@otto/contracts/pipeline-rules";
import { parseQuantity } from "@otto/contracts/quantity";
import { deriveStepName } from "@otto/contracts/step-name";

export interface StepSpec {
  name?: string;
  run: string;
  // "90s", "2m", "1h30m", ...
  timeout?: string;
  env?: Record<string, string>;
}

export interface JobSpec {
  runsOn?: string[];
  env?: Record<string, string>;
  // Jobs that must succeed first; the job gets their artifacts unless a
  // need says `artifacts: false`.
  needs?: Array<string | { job: string; artifacts?: boolean }>;
  // When the job runs once its needs are done, as YAML's `if`: "failure()",
  // "branch == 'main'", ... Unset: success(), every need succeeded.
  if?: string;
  // The same as `if`, for those who prefer a name that is not a keyword.
  condition?: string;
  steps: Array<StepSpec | string>;
  // Further attempts after a failure: a count, or the full policy.
  retry?: number | { max: number; exitCodes?: number[]; agentLost?: boolean };
  // Locks held while the job runs: a name (one job at a time), or a name
  // and how many jobs may hold it at once.
  locks?: Array<string | { name: string; limit?: number }>;
  // Names of secrets the job's steps get as environment variables.
  secrets?: string[];
  // Workspace files the job keeps (relative paths).
  artifacts?: string[];
  // memory: bytes, or a quantity such as "512Mi" or "2G"
  resources?: { cpu?: number; memory?: number | bigint | string };
  // In a project's runs: false leaves the workspace empty (no checkout of the commit).
  checkout?: boolean;
  // All the steps together, e.g. "30m" (OTTO_MAX_JOB_DURATION bounds every job).
  timeout?: string;
  // Wait for a person's approval (RunService.ApproveJob) once the needs are done.
  approval?: boolean | { message?: string; timeout?: string };
  // One job per combination of these values, as a pipeline file's `matrix:`.
  matrix?: MatrixSpec;
}

// Keys (in the order written) with their values, and `include` and
// `exclude` entries: { node: ["20", "22"], os: ["linux"], exclude: [{ node: "20" }] }.
export interface MatrixSpec {
  [key: string]: readonly string[] | readonly Record<string, string>[] | undefined;
  include?: readonly Record<string, string>[];
  exclude?: readonly Record<string, string>[];
}

// A pipeline that breaks the pipeline rules: `problems` has each message, as
// the YAML parser words it, with the path of the field it is about.
export class InvalidPipelineError extends Error {
  readonly problems: readonly PipelineProblem[];

  constructor(problems: readonly PipelineProblem[]) {
    super(`invalid pipeline:\n${formatPipelineProblems(problems)}`);
    this.name = "InvalidPipelineError";
    this.problems = problems;
  }
}

// Builds the same pipeline IR as the YAML parser does, and refuses (with an
// InvalidPipelineError from build()) what the parser would refuse:
//   pipeline("hello").job("build", { runsOn: ["linux"], steps: ["make"] }).build()
export class PipelineBuilder {
  readonly #name: string;
  // As written; build() expands their matrices.
  readonly #jobs: PipelineJob[] = [];
  #concurrency: Pipeline["concurrency"];
  // The combinations of each job's matrix, by the job's index.
  readonly #expansions: (MatrixExpansion | undefined)[] = [];
  // Durations and quantities that do not parse and matrix problems, reported by build() with the rest.
  readonly #problems: PipelineProblem[] = [];

  constructor(name: string) {
    this.#name = name;
  }

  // At most `limit` (default 1) runs of the group at once; the others wait
  // in line. A project's run may write \${{ branch }} in the group.
  concurrency(group: string, options: { limit?: number; cancelInProgress?: boolean } = {}): this {
    this.#concurrency = create(ConcurrencySchema, { group, limit: options.limit ?? 1, cancelInProgress: options.cancelInProgress ?? false });
    return this;
  }

  job(name: string, spec: JobSpec): this {
    const at = ["jobs", this.#jobs.length];
    const report = (path: (string | number)[], message: string | undefined) => {
      if (message !== undefined) this.#problems.push({ path: [...at, ...path], message });
    };
    this.#jobs.push(
      create(PipelineJobSchema, {
        name,
        runsOn: spec.runsOn ?? [],
        env: spec.env ?? {},
        needs: (spec.needs ?? []).map((need) => (typeof need === "string" ? need : need.job)),
        needsWithoutArtifacts: (spec.needs ?? []).flatMap((need) => (typeof need !== "string" && need.artifacts === false ? [need.job] : [])),
        condition: conditionOf(spec, (message) => report(["condition"], message)),
        steps: spec.steps.map((step, i) =>
          buildStep(typeof step === "string" ? { run: step } : step, (message) => report(["steps", i, "timeout"], message)),
        ),
        retry: spec.retry === undefined ? undefined : typeof spec.retry === "number" ? { max: spec.retry } : spec.retry,
        locks: (spec.locks ?? []).map((lock) => (typeof lock === "string" ? lock : lock.name)),
        lockLimits: Object.fromEntries((spec.locks ?? []).flatMap((lock) => (typeof lock !== "string" && (lock.limit ?? 1) !== 1 ? [[lock.name, lock.limit!]] : []))),
        secrets: spec.secrets ?? [],
        artifacts: spec.artifacts ?? [],
        checkout: spec.checkout,
        timeout: duration(spec.timeout, (message) => report(["timeout"], message)),
        approval: approvalOf(spec.approval, (path, message) => report(["approval", ...path], message)),
        resources: spec.resources && { cpu: spec.resources.cpu ?? 0, memoryBytes: memoryBytes(spec.resources.memory, (message) => report(["resources", "memory"], message)) },
      }),
    );
    this.#expansions.push(this.#matrix(name, spec, this.#jobs.at(-1)!, report));
    return this;
  }

  // The job's matrix expanded, and ${{ matrix.KEY }} in its strings checked as the parser checks them.
  #matrix(name: string, spec: JobSpec, job: PipelineJob, report: (path: (string | number)[], message: string | undefined) => void): MatrixExpansion | undefined {
    let expansion: MatrixExpansion | undefined;
    if (spec.matrix) {
      const expanded = expandMatrix(matrixOf(spec.matrix), name);
      for (const problem of expanded.problems) report(["matrix", ...problem.path], problem.message);
      expansion = expanded.expansion;
    }
    // (A matrix with problems of its own: what its references would mean is unknown.)
    if (!spec.matrix || expansion) {
      const references = (path: (string | number)[], text: string) => report(path, matrixReferenceProblem(text, name, expansion));
      job.runsOn.forEach((label, i) => references(["runsOn", i], label));
      for (const [variable, value] of Object.entries(job.env)) {
        report(["env", variable], matrixEnvProblem(variable, name, expansion));
        references(["env", variable], value);
      }
      spec.steps.forEach((step, i) => {
        if (typeof step === "string") return;
        if (step.name !== undefined) references(["steps", i, "name"], step.name);
        for (const [variable, value] of Object.entries(step.env ?? {})) references(["steps", i, "env", variable], value);
      });
    }
    return expansion;
  }

  build(): Pipeline {
    // The rules first hold the jobs as written, so that problems have the paths of the builder's calls.
    const written = create(PipelineSchema, { name: this.#name, jobs: [...this.#jobs], concurrency: this.#concurrency });
    const problems = [...this.#problems, ...pipelineProblems(written)];
    const jobs = this.#jobs.map((job, j) => ({ name: job.name, job, expansion: this.#expansions[j] }));
    const tooMany = jobCountProblem(jobs.length) ? undefined : expandedJobCountProblem(jobs);
    if (tooMany) problems.push({ path: ["jobs"], message: tooMany });
    if (problems.length > 0) throw new InvalidPipelineError(problems);
    const built = create(PipelineSchema, { name: this.#name, jobs: expandJobs(jobs), concurrency: this.#concurrency });
    const expandedProblems = pipelineProblems(built);
    if (expandedProblems.length > 0) throw new InvalidPipelineError(expandedProblems);
    return built;
  }
}

export function pipeline(name: string): PipelineBuilder {
  return new PipelineBuilder(name);
}

function matrixOf(spec: MatrixSpec): Matrix {
  const entries = (list: readonly Record<string, string>[] | undefined) =>
    (list ?? []).map((entry) => Object.entries(entry).map(([key, value]) => ({ key, value: String(value) })));
  return {
    axes: Object.entries(spec)
      .filter(([key]) => key !== "include" && key !== "exclude")
      .map(([key, values]) => ({ key, values: (values ?? []).map(String) })),
    include: entries(spec.include),
    exclude: entries(spec.exclude),
  };
}

function buildStep(spec: StepSpec, report: (message: string) => void) {
  return create(PipelineStepSchema, {
    name: spec.name ?? deriveStepName(spec.run),
    run: spec.run,
    timeout: duration(spec.timeout, report),
    env: spec.env ?? {},
  });
}

function approvalOf(spec: JobSpec["approval"], report: (path: string[], message: string) => void) {
  if (spec === undefined || spec === false) return undefined;
  if (spec === true) return create(ApprovalSchema);
  return create(ApprovalSchema, { message: spec.message ?? "", timeout: duration(spec.timeout, (text) => report(["timeout"], text)) });
}

// The IR has no room for an empty condition (empty means none), so the rules
// cannot see one: it is refused here, as the parser refuses `if: ""`.
function conditionOf(spec: JobSpec, report: (message: string) => void): string {
  if (spec.if !== undefined && spec.condition !== undefined && spec.if !== spec.condition) {
    report("give a job's condition as 'if' or as 'condition', not both");
  }
  const condition = spec.if ?? spec.condition;
  const empty = condition === "" ? conditionProblem(condition) : undefined;
  if (empty) report(empty);
  return condition ?? "";
}

function duration(text: string | undefined, report: (message: string) => void) {
  if (text === undefined) return undefined;
  const parsed = parseDuration(text);
  if (parsed.ok) return create(DurationSchema, { seconds: BigInt(parsed.seconds), nanos: parsed.nanos });
  report(parsed.message);
  return undefined;
}

function memoryBytes(memory: number | bigint | string | undefined, report: (message: string) => void): bigint {
  if (memory === undefined) return 0n;
  if (typeof memory !== "string") return BigInt(memory);
  const parsed = parseQuantity(memory);
  if (parsed.ok) return parsed.bytes;
  report(parsed.message);
  return 0n;
}
