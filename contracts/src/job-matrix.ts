// Job matrices: a job written once with a `matrix` runs once per combination
// of its values. The YAML parser and the SDK's builder both expand through
// this module, so a matrix means the same, and its mistakes read the same,
// however a pipeline is written. Pure and browser-safe.
//
// What a matrix means (as on GitHub Actions):
// - Its keys, in the order written, each with a list of values: every
//   combination of one value of each key.
// - `exclude` entries (key: value mappings, partial ones too) remove every
//   combination they match; they name only the matrix's keys.
// - `include` entries, then, in order: an entry whose values for the
//   matrix's keys are those of some combinations (written by the keys, not
//   added by include) extends each of them with its other keys, replacing
//   what an earlier entry added but never a value of the matrix's keys; an
//   entry that extends none is a combination of its own, and must then give
//   a value for every key of the matrix.
// - An expansion is named base[key=value,...]: the matrix's keys in the
//   order written, then the keys include adds, in the order first written.
//   Its values are in its env as MATRIX_<KEY> (upper case, '-' as '_').
// - `${{ matrix.KEY }}` (spaces inside the braces allowed) is replaced by
//   the expansion's value in runs-on labels, env values (the job's and its
//   steps') and step names. A job's own name is always base[...]; `run`
//   text is left as written (its steps read $MATRIX_KEY). A reference must
//   name a key that every expansion of the job has.
import { clone, create } from "@bufbuild/protobuf";
import { MatrixValueSchema, PipelineJobSchema, type PipelineJob } from "@otto/gen/v1/pipeline_pb";
import { pipelineLimits as limits } from "./pipeline-limits.ts";
import { suggestion } from "./suggestion.ts";

export const matrixLimits = {
  // Expansions of one job.
  combinations: 256,
  // Combinations of the keys' values before exclude, beyond which they are
  // not even listed: exclude cannot bring that many down to the limit.
  listed: 256 * 16,
};

export interface MatrixPair {
  key: string;
  value: string;
}

export interface MatrixAxis {
  key: string;
  values: string[];
}

/** A matrix as written: its keys with their values, and the include and exclude entries. */
export interface Matrix {
  axes: MatrixAxis[];
  include: MatrixPair[][];
  exclude: MatrixPair[][];
}

/** A matrix's combinations, each with its pairs in the order of `keys`. */
export interface MatrixExpansion {
  keys: string[];
  combinations: MatrixPair[][];
}

/**
 * A problem with its path from the matrix: [] the matrix; [key] a key of it,
 * [key, i] its value i; ["include" | "exclude", n] an entry, [..., n, key]
 * a key of the entry, [..., n, key, "value"] that key's value.
 */
export interface MatrixProblem {
  path: readonly (string | number)[];
  message: string;
}

const where = (job: string) => `job '${job}'`;

/** The combinations of a job's matrix, or, when it has any, its problems (and no combinations). */
export function expandMatrix(matrix: Matrix, job: string): { expansion?: MatrixExpansion; problems: MatrixProblem[] } {
  const problems = definitionProblems(matrix, job);
  if (problems.length > 0) return { problems };
  const keys = matrix.axes.map((axis) => axis.key);
  const listed = matrix.axes.reduce((count, axis) => count * axis.values.length, 1);
  if (listed > matrixLimits.listed) return { problems: [{ path: [], message: tooManyMessage(listed, job) }] };

  const matches = (combination: Map<string, string>, entry: MatrixPair[]) => entry.every(({ key, value }) => !keys.includes(key) || combination.get(key) === value);
  let written: Map<string, string>[] = [new Map()];
  for (const axis of matrix.axes) written = written.flatMap((combination) => axis.values.map((value) => new Map([...combination, [axis.key, value]])));
  written = written.filter((combination) => !matrix.exclude.some((entry) => matches(combination, entry)));

  const added: Map<string, string>[] = [];
  const addedKeys: string[] = [];
  matrix.include.forEach((entry, n) => {
    for (const { key } of entry) if (!keys.includes(key) && !addedKeys.includes(key)) addedKeys.push(key);
    const extended = written.filter((combination) => matches(combination, entry));
    for (const combination of extended) for (const { key, value } of entry) combination.set(key, value);
    if (extended.length > 0) return;
    const unknown = entry.filter(({ key }) => !keys.includes(key));
    const missing = keys.filter((key) => !entry.some((pair) => pair.key === key));
    if (missing.length === 0) {
      added.push(new Map(entry.map(({ key, value }) => [key, value])));
    } else if (unknown.length > 0) {
      // A key that is not the matrix's, in an entry that lacks one of them: most likely a misspelling.
      for (const { key } of unknown) {
        const hint = suggestion(key, missing) || `; the matrix's keys are ${quoted(keys)}`;
        problems.push({ path: ["include", n, key], message: `unknown matrix key '${key}' in 'include' of ${where(job)}${hint}` });
      }
    } else {
      const message = `entry ${n + 1} of 'include' of ${where(job)} matches no combination, so it adds one; give it a value for ${quoted(missing)} too`;
      problems.push({ path: ["include", n], message });
    }
  });
  if (problems.length > 0) return { problems };

  const order = [...keys, ...addedKeys];
  const combinations: MatrixPair[][] = [];
  const names = new Set<string>();
  for (const combination of [...written, ...added]) {
    const pairs = order.filter((key) => combination.has(key)).map((key) => ({ key, value: combination.get(key)! }));
    const name = expandedJobName(job, pairs);
    if (names.has(name)) continue; // include gave the same combination twice
    names.add(name);
    combinations.push(pairs);
  }
  if (combinations.length === 0) return { problems: [{ path: ["exclude"], message: `'exclude' removes every combination of the matrix of ${where(job)}` }] };
  if (combinations.length > matrixLimits.combinations) return { problems: [{ path: [], message: tooManyMessage(combinations.length, job) }] };
  const tooLong = combinations.map((pairs) => expandedJobName(job, pairs)).find((name) => name.length > limits.expandedJobNameChars);
  if (tooLong !== undefined) {
    const message = `the name of an expansion of ${where(job)}, '${tooLong}', is too long: ${tooLong.length} characters, at most ${limits.expandedJobNameChars} allowed`;
    return { problems: [{ path: [], message }] };
  }
  return { expansion: { keys: order, combinations }, problems: [] };
}

function tooManyMessage(count: number, job: string): string {
  return `the matrix of ${where(job)} makes ${count} combinations, at most ${matrixLimits.combinations} allowed`;
}

function definitionProblems(matrix: Matrix, job: string): MatrixProblem[] {
  const problems: MatrixProblem[] = [];
  const add = (path: (string | number)[], message: string | undefined) => {
    if (message !== undefined) problems.push({ path, message });
  };
  if (matrix.axes.length === 0) add([], `the matrix of ${where(job)} has no keys; give at least one with a list of values, e.g. node: ["20", "22"]`);
  const envNames = new Map<string, string>();
  for (const { key, values } of matrix.axes) {
    const keyProblem = matrixKeyProblem(key);
    add([key], keyProblem);
    const envName = matrixEnvName(key);
    const other = envNames.get(envName);
    if (!keyProblem && other !== undefined) add([key], `matrix keys '${other}' and '${key}' of ${where(job)} both become ${envName}; rename one`);
    envNames.set(envName, key);
    if (values.length === 0) add([key], `matrix key '${key}' of ${where(job)} has no values; list at least one`);
    values.forEach((value, i) => {
      if (values.indexOf(value) < i) add([key, i], `matrix value '${value}' is listed twice for '${key}' in ${where(job)}`);
      else add([key, i], matrixValueProblem(value, key));
    });
  }
  const keys = matrix.axes.map((axis) => axis.key);
  for (const list of ["exclude", "include"] as const) {
    matrix[list].forEach((entry, n) => {
      if (entry.length === 0) add([list, n], `an empty entry in '${list}' of ${where(job)}; give it keys and values of the matrix`);
      for (const { key, value } of entry) {
        const keyProblem = matrixKeyProblem(key);
        add([list, n, key], keyProblem);
        if (!keyProblem && list === "exclude" && !keys.includes(key)) {
          add([list, n, key], `unknown matrix key '${key}' in 'exclude' of ${where(job)}${suggestion(key, keys) || `; the matrix's keys are ${quoted(keys)}`}`);
        }
        if (!keyProblem && list === "include" && !keys.includes(key)) {
          const envName = matrixEnvName(key);
          const other = envNames.get(envName);
          if (other !== undefined && other !== key) add([list, n, key], `matrix keys '${other}' and '${key}' of ${where(job)} both become ${envName}; rename one`);
          envNames.set(envName, key);
        }
        add([list, n, key, "value"], matrixValueProblem(value, key));
      }
    });
  }
  return problems;
}

export function matrixKeyProblem(key: string): string | undefined {
  if (!limits.matrixKey.test(key)) return `invalid matrix key '${key}': use letters, digits, '_' and '-', starting with a letter or '_'`;
  if (key.length > limits.matrixKeyChars) return `matrix key '${key}' is too long: ${key.length} characters, at most ${limits.matrixKeyChars} allowed`;
  return undefined;
}

export function matrixValueProblem(value: string, key: string): string | undefined {
  if (!limits.matrixValue.test(value)) return `invalid matrix value '${value}' for '${key}': use letters, digits, '.', '_' and '-'`;
  if (value.length > limits.matrixValueChars) return `matrix value '${value}' for '${key}' is too long: ${value.length} characters, at most ${limits.matrixValueChars} allowed`;
  return undefined;
}

/** "test[node=20,os=linux]"; the name as written when there are no values. */
export function expandedJobName(base: string, values: readonly MatrixPair[]): string {
  return values.length === 0 ? base : `${base}[${values.map(({ key, value }) => `${key}=${value}`).join(",")}]`;
}

/** "test" of "test[node=20,os=linux]". */
export function writtenJobName(name: string): string {
  const bracket = name.indexOf("[");
  return bracket < 0 ? name : name.slice(0, bracket);
}

/** MATRIX_NODE_VERSION for 'node-version'. */
export function matrixEnvName(key: string): string {
  return `MATRIX_${key.toUpperCase().replaceAll("-", "_")}`;
}

const reference = /\$\{\{\s*matrix\.([^\s}]*)\s*\}\}/g;

/** The first `${{ matrix.KEY }}` in `text` that names no key every expansion has (or that is in a job with no matrix). */
export function matrixReferenceProblem(text: string, job: string, expansion: MatrixExpansion | undefined): string | undefined {
  for (const [written, key] of text.matchAll(reference)) {
    if (expansion === undefined) return `'${written}' in ${where(job)}, which has no matrix`;
    if (!expansion.keys.includes(key)) {
      const hint = suggestion(key, expansion.keys) || `; the matrix's keys are ${quoted(expansion.keys)}`;
      return `'${written}' names no key of the matrix of ${where(job)}${hint}`;
    }
    const lacking = expansion.combinations.find((pairs) => !pairs.some((pair) => pair.key === key));
    if (lacking) return `'${written}' in ${where(job)}: its expansion '${expandedJobName(job, lacking)}' has no value for '${key}'`;
  }
  return undefined;
}

/** `text` with each `${{ matrix.KEY }}` replaced by the value of KEY (a reference to a key it lacks stays as written). */
export function substituteMatrix(text: string, values: readonly MatrixPair[]): string {
  return text.replace(reference, (written, key: string) => values.find((pair) => pair.key === key)?.value ?? written);
}

/** An env variable the job sets itself that its matrix sets too. */
export function matrixEnvProblem(name: string, job: string, expansion: MatrixExpansion | undefined): string | undefined {
  const key = expansion?.keys.find((key) => matrixEnvName(key) === name);
  return key === undefined ? undefined : `environment variable '${name}' of ${where(job)} is set by its matrix (key '${key}'); remove it or use another name`;
}

/**
 * The jobs, each expanded into one job per combination of its matrix (in
 * order), with needs of an expanded job (and those whose artifacts a job
 * does not get) replaced by all of its expansions.
 */
export function expandJobs(jobs: readonly { job: PipelineJob; expansion?: MatrixExpansion }[]): PipelineJob[] {
  const names = new Map(jobs.map(({ job, expansion }) => [job.name, expansion ? expansion.combinations.map((pairs) => expandedJobName(job.name, pairs)) : [job.name]]));
  const withNeeds = (job: PipelineJob) => {
    job.needs = job.needs.flatMap((need) => names.get(need) ?? [need]);
    job.needsWithoutArtifacts = job.needsWithoutArtifacts.flatMap((need) => names.get(need) ?? [need]);
    return job;
  };
  return jobs.flatMap(({ job, expansion }) => {
    if (!expansion) return [withNeeds(clone(PipelineJobSchema, job))];
    return expansion.combinations.map((pairs) => withNeeds(expandedJob(job, pairs)));
  });
}

function expandedJob(job: PipelineJob, pairs: MatrixPair[]): PipelineJob {
  const expanded = clone(PipelineJobSchema, job);
  const substituted = (env: { [name: string]: string }) => Object.fromEntries(Object.entries(env).map(([name, value]) => [name, substituteMatrix(value, pairs)]));
  expanded.name = expandedJobName(job.name, pairs);
  expanded.matrix = pairs.map((pair) => create(MatrixValueSchema, pair));
  expanded.runsOn = job.runsOn.map((label) => substituteMatrix(label, pairs));
  expanded.env = { ...Object.fromEntries(pairs.map(({ key, value }) => [matrixEnvName(key), value])), ...substituted(job.env) };
  for (const step of expanded.steps) {
    step.name = substituteMatrix(step.name, pairs);
    step.env = substituted(step.env);
  }
  return expanded;
}

/** A pipeline whose matrices make it more than the jobs allowed. */
export function expandedJobCountProblem(jobs: readonly { name: string; expansion?: MatrixExpansion }[]): string | undefined {
  const count = jobs.reduce((sum, job) => sum + (job.expansion?.combinations.length ?? 1), 0);
  if (count <= limits.jobs) return undefined;
  const matrices = jobs.filter((job) => job.expansion).map((job) => `'${job.name}' makes ${job.expansion!.combinations.length}`);
  return `the pipeline has ${count} jobs once its matrices are expanded (${matrices.join(", ")}), at most ${limits.jobs} allowed`;
}

/**
 * The problems of an expansion in the IR (a job with `matrix` values), with
 * their paths from the job: its values, and its name, which must be its
 * written name with those values.
 */
export function expansionProblems(job: PipelineJob): MatrixProblem[] {
  const problems: MatrixProblem[] = [];
  if (job.matrix.length === 0) return problems;
  if (job.matrix.length > limits.matrixKeys) problems.push({ path: ["matrix"], message: `${where(job.name)} has ${job.matrix.length} matrix values, at most ${limits.matrixKeys} allowed` });
  job.matrix.forEach(({ key, value }, i) => {
    const keyProblem = matrixKeyProblem(key);
    if (keyProblem) problems.push({ path: ["matrix", i, "key"], message: keyProblem });
    else if (job.matrix.findIndex((other) => other.key === key) < i) problems.push({ path: ["matrix", i, "key"], message: `matrix key '${key}' is given twice in ${where(job.name)}` });
    const valueProblem = matrixValueProblem(value, key);
    if (valueProblem) problems.push({ path: ["matrix", i, "value"], message: valueProblem });
  });
  const name = expandedJobName(writtenJobName(job.name), job.matrix);
  if (name !== job.name) problems.push({ path: ["name"], message: `${where(job.name)} has matrix values ${job.matrix.map(({ key, value }) => `${key}=${value}`).join(",")}: its name must be '${name}'` });
  else if (name.length > limits.expandedJobNameChars) {
    problems.push({ path: ["name"], message: `job name '${name}' is too long: ${name.length} characters, at most ${limits.expandedJobNameChars} allowed` });
  }
  return problems;
}

function quoted(keys: readonly string[]): string {
  return keys.map((key) => `'${key}'`).join(", ");
}
