// Pipeline file (YAML, version 1) -> Pipeline IR, or every problem found,
// each at the line and column of the node it is about.

import { create, toBinary } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from "yaml";
import type { Document, ParsedNode, Scalar, YAMLError, YAMLMap } from "yaml";
import { ApprovalSchema, ConcurrencySchema, PipelineJobSchema, PipelineSchema, PipelineStepSchema, ResourcesSchema, RetryPolicySchema } from "@otto/gen/v1/pipeline_pb";
import type { Approval, Concurrency, Pipeline, PipelineJob, PipelineStep, Resources, RetryPolicy } from "@otto/gen/v1/pipeline_pb";
import { concurrencyGroupProblem } from "@otto/contracts/concurrency-group";
import { parseDuration } from "@otto/contracts/duration";
import { parseCondition } from "@otto/contracts/job-condition";
import {
  expandedJobCountProblem,
  expandJobs,
  expandMatrix,
  matrixEnvProblem,
  matrixReferenceProblem,
  type Matrix,
  type MatrixExpansion,
  type MatrixPair,
} from "@otto/contracts/job-matrix";
import {
  approvalMessageProblem,
  envNameProblem,
  jobCountProblem,
  jobNameProblem,
  jobNameProblems,
  jobWhere,
  nameListProblems,
  nameLists,
  needsProblems,
  pipelineLimits as limits,
  pipelineNameProblem,
  runProblem,
  stepCountProblem,
  stepNameProblem,
  stepWhere,
  textProblem,
} from "@otto/contracts/pipeline-rules";
import { neededNames } from "@otto/contracts/added-jobs";
import { parseQuantity } from "@otto/contracts/quantity";
import { deriveStepName } from "@otto/contracts/step-name";
import { suggestion } from "@otto/contracts/suggestion";
import { measureExpansion } from "./expanded-size.ts";

export interface PipelineProblemInfo {
  line: number; // 1-based; 0 (with column 0) when the problem has no single place
  column: number;
  message: string;
}

// `tooLarge`: the pipeline is refused for its size (resource_exhausted), not for a mistake in it.
export type ParseResult = { ok: true; pipeline: Pipeline } | { ok: false; problems: PipelineProblemInfo[]; tooLarge?: true };

// What a pipeline may become once its aliases are expanded. A pipeline
// without aliases stays far below both (the file is at most 256 KiB, and
// every node takes at least a character and a separator); aliases may
// repeat a part of the file, but not make the parser, the gateway or the
// coordinator hold a thousand copies of it.
export const expansionLimits = { nodes: 200_000, textChars: 1024 * 1024 };
export const maxPipelineIrBytes = 1024 * 1024;

export interface ParseOptions {
  // A fragment of jobs to add to a run (RunService.AddJobs): a document
  // whose only key is `jobs`, whose jobs may also need `runJobs`, the run's.
  fragment?: { runJobs: readonly string[] };
}

export function parsePipeline(text: string, options: ParseOptions = {}): ParseResult {
  const tooDeep = nestingProblem(text);
  if (tooDeep) return { ok: false, problems: [tooDeep] };
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  // Other YAML errors may leave a tree not worth checking; duplicate keys do not.
  // yaml's own duplicate key errors can point before the key, so duplicateKeys finds them again.
  const errors = doc.errors.filter((error) => error.code !== "DUPLICATE_KEY");
  if (errors.length > 0) return { ok: false, problems: sortProblems(errors.map((error) => yamlProblem(error, lines))) };
  const problems = duplicateKeys(doc, lines);
  let aliases = 0;
  visit(doc, {
    Alias(_key, node) {
      if (++aliases === MAX_ALIASES + 1) {
        problems.push({ ...position(node as ParsedNode, lines), message: `more than ${MAX_ALIASES} aliases (*name); a pipeline needs far fewer` });
      }
    },
  });
  if (aliases > MAX_ALIASES) return { ok: false, problems };
  const expansion = measureExpansion(doc, expansionLimits);
  if (!expansion.ok) {
    const what = expansion.limit === "nodes" ? `${expansionLimits.nodes} YAML nodes` : `${expansionLimits.textChars / 1024 ** 2} MiB of text`;
    const message = `with each alias counted as a copy of its anchor, the pipeline grows past ${what} here; a pipeline needs far less`;
    return { ok: false, tooLarge: true, problems: [{ ...position(expansion.at, lines), message }] };
  }

  const checker = new Checker(doc, lines, text, options.fragment);
  const pipeline = checker.pipeline(doc.contents);
  problems.push(...checker.problems);
  if (problems.length > 0) return { ok: false, problems: sortProblems(problems) };
  const irBytes = toBinary(PipelineSchema, pipeline).byteLength;
  if (irBytes > maxPipelineIrBytes) {
    const message = `the pipeline's IR would be ${irBytes} bytes, more than the ${maxPipelineIrBytes / 1024 ** 2} MiB allowed`;
    return { ok: false, tooLarge: true, problems: [{ line: 0, column: 0, message }] };
  }
  return { ok: true, pipeline };
}

// Nesting is bounded before the YAML parser sees the text (which would
// recurse once per level): flow brackets, and indentation.
function nestingProblem(text: string): PipelineProblemInfo | undefined {
  let depth = 0;
  let line = 1;
  let column = 0;
  let lineStart = true;
  let indent = 0;
  for (const char of text) {
    column++;
    if (char === "\n") {
      line++;
      column = 0;
      lineStart = true;
      indent = 0;
      continue;
    }
    if (lineStart && char === " ") {
      if (++indent > MAX_INDENT) return { line, column, message: `indented more than ${MAX_INDENT} columns; pipelines are never nested that deeply` };
      continue;
    }
    lineStart = false;
    if (char === "[" || char === "{") depth++;
    else if ((char === "]" || char === "}") && depth > 0) depth--;
    if (depth > MAX_FLOW_DEPTH) return { line, column, message: `[ ] and { } nested more than ${MAX_FLOW_DEPTH} deep; pipelines never need that` };
  }
  return undefined;
}

/** One line per problem, "file:line:col: message" ("file: message" without a place), in file order. */
export function formatProblems(problems: PipelineProblemInfo[], fileName: string): string {
  return sortProblems(problems)
    .map((p) => (p.line > 0 ? `${fileName}:${p.line}:${p.column}: ${p.message}` : `${fileName}: ${p.message}`))
    .join("\n");
}

function sortProblems(problems: PipelineProblemInfo[]): PipelineProblemInfo[] {
  return problems.toSorted((a, b) => a.line - b.line || a.column - b.column);
}

const TOP_KEYS = ["name", "concurrency", "jobs"];
const FRAGMENT_KEYS = ["jobs"];
const CONCURRENCY_KEYS = ["group", "limit", "cancel-in-progress"];
const MAX_ALIASES = 100;
const MAX_FLOW_DEPTH = 32;
const MAX_INDENT = 160;
const JOB_KEYS = ["runs-on", "env", "needs", "if", "retry", "locks", "resources", "secrets", "artifacts", "checkout", "timeout", "approval", "matrix", "steps"];
const STEP_KEYS = ["name", "run", "timeout", "env"];
const RETRY_KEYS = ["max", "exit-codes", "agent-lost"];
const APPROVAL_KEYS = ["message", "timeout"];
const NEED_KEYS = ["job", "artifacts"];
const LOCK_KEYS = ["name", "limit"];
const RESOURCE_KEYS = ["cpu", "memory"];

type Doc = Document.Parsed;
interface Entry {
  key: ParsedNode;
  value: ParsedNode | null; // null for a key without a value, as in `{ a }`
}
/** A string from the file, with the node it came from. */
interface Located {
  text: string;
  node: ParsedNode;
}
interface JobInfo {
  key: ParsedNode;
  needs: Located[];
  job: PipelineJob;
  // The combinations of the job's matrix, once it has one without problems.
  expansion?: MatrixExpansion;
}
/** Reports a `${{ matrix.KEY }}` in a string of the job that it cannot replace. */
type ReferenceCheck = (text: string, node: ParsedNode | null) => void;

/** Walks the document, building the IR and collecting problems as it goes. */
class Checker {
  readonly problems: PipelineProblemInfo[] = [];
  #doc: Doc;
  #lines: LineCounter;
  #text: string;
  // A fragment's: the names its needs may name besides its own jobs'.
  #runJobs: Set<string> | undefined;

  constructor(doc: Doc, lines: LineCounter, text: string, fragment?: ParseOptions["fragment"]) {
    this.#doc = doc;
    this.#lines = lines;
    this.#text = text;
    this.#runJobs = fragment && neededNames(fragment.runJobs);
  }

  pipeline(root: ParsedNode | null): Pipeline {
    const pipeline = create(PipelineSchema);
    const fragment = this.#runJobs !== undefined;
    const expected = fragment ? "a mapping with 'jobs'" : "a mapping with 'name' and 'jobs'";
    root = this.#resolve(root);
    if (root === null) {
      this.#report(null, `the ${fragment ? "jobs fragment" : "pipeline file"} is empty; expected ${expected}`);
      return pipeline;
    }
    if (!isMap(root)) {
      this.#report(root, `expected ${expected} at the top level, got ${describe(root)}`);
      return pipeline;
    }
    const top = this.#entries(root, fragment ? FRAGMENT_KEYS : TOP_KEYS, fragment ? "at the top level of a jobs fragment" : "at the top level");
    if (!fragment) {
      const name = this.#required(top, "name", root, "the pipeline");
      pipeline.name = this.#string(name, "for 'name'");
      if (name) this.#report(name.value, pipelineNameProblem(pipeline.name));
      pipeline.concurrency = this.#concurrency(top.get("concurrency"));
    }

    const jobs = this.#required(top, "jobs", root, fragment ? "the jobs fragment" : "the pipeline");
    if (jobs === undefined) return pipeline;
    if (!isMap(jobs.value)) {
      this.#wrongType(jobs, "a mapping of job names to jobs", "for 'jobs'");
      return pipeline;
    }
    // Every job, a job defined twice too: the rules report that, at the second.
    const infos = this.#entries(jobs.value, null, "in 'jobs'", true).map(([name, entry]) => this.#job(name, entry));
    this.#report(jobs.value, jobCountProblem(infos.length) ?? expandedJobCountProblem(infos.map((info) => ({ name: info.job.name, expansion: info.expansion }))));
    for (const problem of jobNameProblems(infos.map((info) => info.job))) this.#report(infos[problem.path[1] as number].key, problem.message);
    for (const problem of needsProblems(infos.map((info) => info.job), this.#runJobs)) {
      this.#report(infos[problem.path[1] as number].needs[problem.path[3] as number].node, problem.message);
    }
    pipeline.jobs = this.problems.length === 0 ? expandJobs(infos) : infos.map((info) => info.job);
    return pipeline;
  }

  #job(name: string, entry: Entry): JobInfo {
    const job = create(PipelineJobSchema, { name });
    const info: JobInfo = { key: entry.key, needs: [], job };
    this.#report(entry.key, jobNameProblem(name));
    const where = jobWhere(name);
    if (!isMap(entry.value)) {
      this.#wrongType(entry, "a mapping with 'steps'", `for ${where}`);
      return info;
    }
    const fields = this.#entries(entry.value, JOB_KEYS, `in ${where}`);
    const matrix = fields.get("matrix");
    info.expansion = matrix && this.#matrix(matrix, name);
    // A matrix with problems of its own: what its references would mean is unknown.
    const references: ReferenceCheck = matrix && !info.expansion ? () => {} : (text, node) => this.#report(node, matrixReferenceProblem(text, name, info.expansion));
    const runsOn = this.#strings(fields.get("runs-on"), "'runs-on'");
    for (const label of runsOn) references(label.text, label.node);
    job.runsOn = runsOn.map((label) => label.text);
    job.env = this.#env(fields.get("env"), references, (variable, key) => this.#report(key, matrixEnvProblem(variable, name, info.expansion)));
    const needs = this.#needs(fields.get("needs"), where);
    info.needs = needs.map((need) => need.job);
    job.needs = info.needs.map((need) => need.text);
    job.needsWithoutArtifacts = needs.filter((need) => !need.artifacts).map((need) => need.job.text);
    job.condition = this.#condition(fields.get("if"));
    job.retry = this.#retry(fields.get("retry"), where);
    job.resources = this.#resources(fields.get("resources"), where);
    this.#nameLists(fields, job, where);
    const checkout = fields.get("checkout");
    if (checkout !== undefined) {
      if (isScalar(checkout.value) && typeof checkout.value.value === "boolean") job.checkout = checkout.value.value;
      else this.#wrongType(checkout, "true or false", "for 'checkout'");
    }
    job.timeout = this.#duration(fields.get("timeout"));
    job.approval = this.#approval(fields.get("approval"), where);
    const steps = this.#required(fields, "steps", entry.value, where);
    if (steps === undefined) return info;
    if (!isSeq(steps.value)) {
      this.#wrongType(steps, "a list of steps", `for 'steps' in ${where}`);
      return info;
    }
    this.#report(steps.value, stepCountProblem(steps.value.items.length, where));
    job.steps = steps.value.items.map((item, i) => this.#step({ key: item, value: this.#resolve(item) }, stepWhere(i, where), references));
    return info;
  }

  /** A job's matrix: its combinations, or undefined after reporting its problems. */
  #matrix(entry: Entry, job: string): MatrixExpansion | undefined {
    if (!isMap(entry.value)) {
      this.#wrongType(entry, "a mapping of keys to lists of values (and 'include' and 'exclude')", "for 'matrix'");
      return undefined;
    }
    const before = this.problems.length;
    // Where each part of the matrix is, by its path (job-matrix.ts's MatrixProblem).
    const nodes = new Map<string, ParsedNode | null>([["[]", entry.key]]);
    const at = (path: (string | number)[], node: ParsedNode | null) => nodes.set(JSON.stringify(path), node);
    const matrix: Matrix = { axes: [], include: [], exclude: [] };
    const value = (item: Entry, where: string): string => {
      const text = scalarText(item.value);
      if (text === undefined) this.#wrongType(item, "a value (letters, digits, '.', '_' and '-')", where);
      return text ?? "";
    };
    for (const [key, field] of this.#entries(entry.value, null, `in 'matrix' of ${jobWhere(job)}`)) {
      at([key], field.key);
      if (key === "include" || key === "exclude") {
        if (!isSeq(field.value)) {
          this.#wrongType(field, "a list of mappings of matrix keys to values", `for '${key}'`);
          continue;
        }
        field.value.items.forEach((item, n) => {
          const node = this.#resolve(item);
          at([key, n], node);
          if (!isMap(node)) {
            this.#wrongType({ key: item, value: node }, "a mapping of matrix keys to values", `in '${key}'`);
            return;
          }
          const pairs: MatrixPair[] = [];
          for (const [name, pair] of this.#entries(node, null, `in '${key}'`)) {
            at([key, n, name], pair.key);
            at([key, n, name, "value"], pair.value);
            pairs.push({ key: name, value: value(pair, `for '${name}' in '${key}'`) });
          }
          matrix[key].push(pairs);
        });
      } else if (isSeq(field.value)) {
        const values = field.value.items.map((item, i) => {
          const node = this.#resolve(item);
          at([key, i], node);
          return value({ key: item, value: node }, `in the values of '${key}'`);
        });
        matrix.axes.push({ key, values });
      } else {
        this.#wrongType(field, "a list of values", `for matrix key '${key}'`);
      }
    }
    if (this.problems.length > before) return undefined;
    const { expansion, problems } = expandMatrix(matrix, job);
    for (const problem of problems) this.#report(nodes.get(JSON.stringify(problem.path)) ?? entry.key, problem.message);
    return expansion;
  }

  #step(entry: Entry, where: string, references: ReferenceCheck): PipelineStep {
    const step = create(PipelineStepSchema);
    if (!isMap(entry.value)) {
      const hint = isScalar(entry.value) && typeof entry.value.value === "string" ? `; write '- run: ${entry.value.value}'` : "";
      this.#wrongType(entry, "a mapping with 'run'", `for ${where}`, hint);
      return step;
    }
    const fields = this.#entries(entry.value, STEP_KEYS, `in ${where}`);
    const run = this.#required(fields, "run", entry.value, where);
    step.run = this.#string(run, "for 'run'");
    if (run) this.#report(run.value, runProblem(step.run, where));
    const name = fields.get("name");
    step.name = name ? this.#string(name, "for 'name'") : deriveStepName(step.run);
    if (name) this.#report(name.value, stepNameProblem(step.name, where));
    if (name) references(step.name, name.value);
    step.timeout = this.#duration(fields.get("timeout"));
    step.env = this.#env(fields.get("env"), references);
    return step;
  }

  /** A non-empty string; numbers and booleans are refused, as they are rarely meant as text. */
  #string(entry: Entry | undefined, where: string): string {
    if (entry === undefined) return "";
    const value = entry.value;
    if (isScalar(value) && typeof value.value === "string") {
      this.#report(value, textProblem(value.value, where));
      return value.value;
    }
    const quoted = isScalar(value) && value.value !== null ? `; quote it if you mean the text: "${value.source}"` : "";
    this.#wrongType(entry, "a string", where, quoted);
    return "";
  }

  /** A string or a list of strings. */
  #strings(entry: Entry | undefined, what: string): Located[] {
    if (entry === undefined) return [];
    const located = (item: Entry, where: string): Located[] => {
      const text = this.#string(item, where);
      return item.value && text ? [{ text, node: item.value }] : [];
    };
    if (isSeq(entry.value)) return entry.value.items.flatMap((item) => located({ key: item, value: this.#resolve(item) }, `in ${what}`));
    if (isScalar(entry.value) && typeof entry.value.value === "string") return located(entry, `for ${what}`);
    this.#wrongType(entry, "a string or a list of strings", `for ${what}`);
    return [];
  }

  /** A key's items, whether written as a list or as one item alone, and how messages place them. */
  #listOrOne(entry: Entry, key: string): { items: Entry[]; inList: boolean; what: string } {
    if (!isSeq(entry.value)) return { items: [entry], inList: false, what: `for '${key}'` };
    return { items: entry.value.items.map((item) => ({ key: item, value: this.#resolve(item) })), inList: true, what: `in '${key}'` };
  }

  /**
   * Jobs this one needs: each a job's name or a mapping with 'job' and 'artifacts' (false: not
   * its artifacts), in a list or on its own.
   */
  #needs(entry: Entry | undefined, where: string): { job: Located; artifacts: boolean }[] {
    if (entry === undefined) return [];
    const { items, inList, what } = this.#listOrOne(entry, "needs");
    return items.flatMap((item) => {
      if (isScalar(item.value) && typeof item.value.value === "string") {
        const text = this.#string(item, what);
        return text ? [{ job: { text, node: item.value }, artifacts: true }] : [];
      }
      if (!isMap(item.value)) {
        const expected = inList ? "a job's name or a mapping with 'job' and 'artifacts'" : "a job's name, a mapping with 'job' and 'artifacts', or a list of them";
        this.#wrongType(item, expected, what);
        return [];
      }
      const owner = `a need of ${where}`;
      const fields = this.#entries(item.value, NEED_KEYS, `in ${owner}`);
      const job = this.#required(fields, "job", item.value, owner);
      const text = this.#string(job, "for 'job' in 'needs'");
      const artifacts = fields.get("artifacts");
      let getsArtifacts = true;
      if (artifacts !== undefined) {
        if (isScalar(artifacts.value) && typeof artifacts.value.value === "boolean") getsArtifacts = artifacts.value.value;
        else this.#wrongType(artifacts, "true or false", "for 'artifacts' in 'needs'");
      }
      return job?.value && text ? [{ job: { text, node: job.value }, artifacts: getsArtifacts }] : [];
    });
  }

  /**
   * Locks the job holds: each a lock's name or a mapping with 'name' and 'limit' (how many
   * jobs may hold it at once; else one), in a list or on its own. Limits go to `job`.
   */
  #locks(entry: Entry | undefined, job: PipelineJob, where: string): Located[] {
    if (entry === undefined) return [];
    const { items, inList, what } = this.#listOrOne(entry, "locks");
    return items.flatMap((item) => {
      if (isScalar(item.value)) {
        const text = this.#string(item, what);
        return item.value && text ? [{ text, node: item.value }] : [];
      }
      if (!isMap(item.value)) {
        const expected = inList ? "a lock's name or a mapping with 'name' and 'limit'" : "a lock's name, a mapping with 'name' and 'limit', or a list of them";
        this.#wrongType(item, expected, what);
        return [];
      }
      const owner = `a lock of ${where}`;
      const fields = this.#entries(item.value, LOCK_KEYS, `in ${owner}`);
      const name = this.#required(fields, "name", item.value, owner);
      const text = this.#string(name, "for 'name' in 'locks'");
      const limit = this.#integer(fields.get("limit"), limits.lockLimit.min, limits.lockLimit.max, "for 'limit' in 'locks'");
      if (text && limit !== undefined && limit > 1) job.lockLimits[text] = limit;
      return name?.value && text ? [{ text, node: name.value }] : [];
    });
  }

  #env(entry: Entry | undefined, references: ReferenceCheck, nameCheck?: (name: string, key: ParsedNode) => void): { [name: string]: string } {
    if (entry === undefined) return {};
    if (!isMap(entry.value)) {
      this.#wrongType(entry, "a mapping of variable names to values", "for 'env'");
      return {};
    }
    const env: [string, string][] = [];
    for (const [name, variable] of this.#entries(entry.value, null, "in 'env'")) {
      this.#report(variable.key, envNameProblem(name));
      nameCheck?.(name, variable.key);
      const text = scalarText(variable.value);
      if (text !== undefined) {
        references(text, variable.value);
        env.push([name, text]);
      } else this.#wrongType(variable, "a string", `for environment variable '${name}'`, isEmpty(variable.value) ? `; write ${name}: "" for an empty value` : "");
    }
    return Object.fromEntries(env);
  }

  /** `if`: an expression (YAML's true and false are the expressions true and false), its problems at their column. */
  #condition(entry: Entry | undefined): string {
    if (entry === undefined) return "";
    const node = entry.value;
    if (isScalar(node) && node.tag?.startsWith("!")) {
      // `if: !cancelled()` is a YAML tag followed by nothing; `if: ! cancelled()` is the text "cancelled()".
      const at = node.range ? this.#text.lastIndexOf(node.tag, node.range[0]) : -1;
      const message = `YAML reads '${node.tag}' as a tag, not as part of the expression; quote the whole expression or write it inside \${{ }}`;
      if (at >= 0) this.#reportAt(at, message);
      else this.#report(node, message);
      return "";
    }
    if (isScalar(node) && typeof node.value === "boolean") return String(node.value);
    if (!isScalar(node) || typeof node.value !== "string") {
      this.#wrongType(entry, "an expression such as success() or branch == 'main'", "for 'if'");
      return "";
    }
    const parsed = parseCondition(node.value);
    if (!parsed.ok) this.#reportAt(offsetInFile(node, parsed.offset, this.#text), parsed.message);
    return node.value;
  }

  #duration(entry: Entry | undefined): Duration | undefined {
    if (entry === undefined) return undefined;
    const text = scalarText(entry.value);
    if (text === undefined) {
      this.#wrongType(entry, 'a duration such as "90s" or "1h30m"', "for 'timeout'");
      return undefined;
    }
    const duration = parseDuration(text);
    if (!duration.ok) {
      this.#report(entry.value, duration.message);
      return undefined;
    }
    return create(DurationSchema, { seconds: BigInt(duration.seconds), nanos: duration.nanos });
  }

  /** true, false, or a mapping with 'message' and 'timeout'. */
  #approval(entry: Entry | undefined, where: string): Approval | undefined {
    if (entry === undefined) return undefined;
    if (isScalar(entry.value) && typeof entry.value.value === "boolean") return entry.value.value ? create(ApprovalSchema) : undefined;
    if (!isMap(entry.value)) {
      this.#wrongType(entry, "true, false or a mapping with 'message' and 'timeout'", "for 'approval'");
      return undefined;
    }
    const fields = this.#entries(entry.value, APPROVAL_KEYS, `in 'approval' of ${where}`);
    const approval = create(ApprovalSchema);
    const message = fields.get("message");
    if (message) {
      approval.message = this.#string(message, "for 'message'");
      this.#report(message.value, approvalMessageProblem(approval.message));
    }
    approval.timeout = this.#duration(fields.get("timeout"));
    return approval;
  }

  /** A group's name, or a mapping with 'group', 'limit' and 'cancel-in-progress'. */
  #concurrency(entry: Entry | undefined): Concurrency | undefined {
    if (entry === undefined) return undefined;
    const concurrency = create(ConcurrencySchema, { limit: 1 });
    let group: Entry | undefined = entry;
    if (isMap(entry.value)) {
      const fields = this.#entries(entry.value, CONCURRENCY_KEYS, "in 'concurrency'");
      group = this.#required(fields, "group", entry.value, "'concurrency'");
      concurrency.limit = this.#integer(fields.get("limit"), limits.concurrencyLimit.min || 1, limits.concurrencyLimit.max, "for 'limit' in 'concurrency'") ?? 1;
      const cancel = fields.get("cancel-in-progress");
      if (cancel !== undefined) {
        if (isScalar(cancel.value) && typeof cancel.value.value === "boolean") concurrency.cancelInProgress = cancel.value.value;
        else this.#wrongType(cancel, "true or false", "for 'cancel-in-progress'");
      }
    } else if (!(isScalar(entry.value) && typeof entry.value.value === "string")) {
      this.#wrongType(entry, "a group name or a mapping with 'group', 'limit' and 'cancel-in-progress'", "for 'concurrency'");
      return undefined;
    }
    concurrency.group = this.#string(group, "for 'group' in 'concurrency'");
    const problem = concurrency.group ? concurrencyGroupProblem(concurrency.group) : undefined;
    if (problem && isScalar(group?.value)) this.#reportAt(offsetInFile(group.value, problem.offset, this.#text), problem.message);
    return concurrency;
  }

  /** A mapping with 'max', 'exit-codes' and 'agent-lost', or just the integer for 'max'. */
  #retry(entry: Entry | undefined, where: string): RetryPolicy | undefined {
    if (entry === undefined) return undefined;
    const retry = create(RetryPolicySchema);
    if (!isMap(entry.value)) {
      retry.max = this.#integer(entry, limits.retries.min, limits.retries.max, "for 'retry'", " or a mapping with 'max'") ?? 0;
      return retry;
    }
    const owner = `'retry' of ${where}`;
    const fields = this.#entries(entry.value, RETRY_KEYS, `in ${owner}`);
    retry.max = this.#integer(this.#required(fields, "max", entry.value, owner), limits.retries.min, limits.retries.max, "for 'max' in 'retry'") ?? 0;
    const codes = fields.get("exit-codes");
    if (codes !== undefined && isSeq(codes.value)) {
      retry.exitCodes = codes.value.items.flatMap(
        (item) => this.#integer({ key: item, value: this.#resolve(item) }, limits.exitCodes.min, limits.exitCodes.max, "in 'exit-codes'") ?? [],
      );
    } else if (codes !== undefined) {
      retry.exitCodes = [this.#integer(codes, limits.exitCodes.min, limits.exitCodes.max, "for 'exit-codes'", " or a list of them")].filter((code) => code !== undefined);
    }
    const agentLost = fields.get("agent-lost");
    if (agentLost !== undefined) {
      if (isScalar(agentLost.value) && typeof agentLost.value.value === "boolean") retry.agentLost = agentLost.value.value;
      else this.#wrongType(agentLost, "true or false", "for 'agent-lost'");
    }
    return retry;
  }

  /** Locks, secrets and artifacts: each a string or a list of strings. */
  #nameLists(fields: Map<string, Entry>, job: PipelineJob, where: string): void {
    for (const [field, what, max, problemOf] of nameLists) {
      // Blank names are reported as empty strings already.
      const names = (field === "locks" ? this.#locks(fields.get(field), job, where) : this.#strings(fields.get(field), `'${field}'`)).filter((name) => name.text.trim() !== "");
      for (const problem of nameListProblems(names.map((name) => name.text), what, where, max, problemOf)) this.#report(names[problem.index].node, problem.message);
      job[field] = names.map((name) => name.text);
    }
  }

  /** A mapping with 'cpu' and 'memory'; either one left out is 0, no requirement. */
  #resources(entry: Entry | undefined, where: string): Resources | undefined {
    if (entry === undefined) return undefined;
    const resources = create(ResourcesSchema);
    if (!isMap(entry.value)) {
      this.#wrongType(entry, "a mapping with 'cpu' and 'memory'", "for 'resources'");
      return resources;
    }
    const fields = this.#entries(entry.value, RESOURCE_KEYS, `in 'resources' of ${where}`);
    const cpu = fields.get("cpu");
    if (cpu !== undefined) {
      const value = isScalar(cpu.value) ? cpu.value.value : undefined;
      if (typeof value === "number" && value > 0 && value <= limits.cpu) resources.cpu = value;
      else {
        const millicores = typeof value === "string" ? /^(\d+)m$/.exec(value) : null;
        const hint = millicores ? `; write ${Number(millicores[1]) / 1000} for "${value}"` : unquoteHint(cpu.value);
        this.#wrongType(cpu, `a number of cores above 0 and at most ${limits.cpu}`, "for 'cpu'", hint);
      }
    }
    const memory = fields.get("memory");
    if (memory !== undefined) {
      const text = scalarText(memory.value);
      const quantity = text === undefined ? undefined : parseQuantity(text);
      if (quantity === undefined) this.#wrongType(memory, 'a quantity such as "512Mi" or "2G"', "for 'memory'");
      else if (!quantity.ok) this.#report(memory.value, quantity.message);
      else resources.memoryBytes = quantity.bytes;
    }
    return resources;
  }

  /**
   * An integer from min to max, written as one (not as "2" or 2.0); undefined after reporting
   * anything else. `alternative` adds to what is expected, for values that may also be something else.
   */
  #integer(entry: Entry | undefined, min: number, max: number, where: string, alternative = ""): number | undefined {
    if (entry === undefined) return undefined;
    const node = entry.value;
    if (isScalar(node) && typeof node.value === "number" && INTEGER.test(node.source ?? "") && node.value >= min && node.value <= max) {
      return node.value + 0; // turns -0 into 0
    }
    this.#wrongType(entry, `an integer from ${min} to ${max}${alternative}`, where, unquoteHint(node));
    return undefined;
  }

  /** The pairs of a mapping by key, reporting keys that are not in `known` (null: any key goes). */
  #entries(map: YAMLMap.Parsed, known: string[] | null, where: string): Map<string, Entry>;
  #entries(map: YAMLMap.Parsed, known: null, where: string, repeats: true): [string, Entry][];
  #entries(map: YAMLMap.Parsed, known: string[] | null, where: string, repeats = false): Map<string, Entry> | [string, Entry][] {
    const entries = new Map<string, Entry>();
    const all: [string, Entry][] = [];
    for (const pair of map.items) {
      const key = this.#resolve(pair.key) ?? pair.key;
      const name = scalarText(key);
      if (name === undefined) {
        this.#report(key, `expected a plain key ${where}, got ${describe(key)}`);
      } else if (known !== null && !known.includes(name)) {
        const hint = suggestion(name, known) || `; expected one of ${known.map((k) => `'${k}'`).join(", ")}`;
        this.#report(key, `unknown key '${name}' ${where}${hint}`);
      } else {
        all.push([name, { key, value: this.#resolve(pair.value) }]);
        // Later duplicates are dropped; duplicateKeys reports them.
        if (!entries.has(name)) entries.set(name, all.at(-1)![1]);
      }
    }
    return repeats ? all : entries;
  }

  #required(entries: Map<string, Entry>, key: string, map: YAMLMap.Parsed, owner: string): Entry | undefined {
    const entry = entries.get(key);
    if (entry === undefined) this.#report(map, `${owner} is missing required key '${key}'`);
    return entry;
  }

  /** At the value, or at the key when there is no value to point at. */
  #wrongType(entry: Entry, expected: string, where: string, hint = ""): void {
    this.#report(isEmpty(entry.value) ? entry.key : entry.value, `expected ${expected} ${where}, got ${describe(entry.value)}${hint}`);
  }

  /** Aliases are followed to their anchored node; an alias to no anchor stays as it is. */
  #resolve(node: ParsedNode | null): ParsedNode | null {
    return isAlias(node) ? ((node.resolve(this.#doc) as ParsedNode | undefined) ?? node) : node;
  }

  #report(node: ParsedNode | null, message: string | undefined): void {
    if (message !== undefined) this.problems.push({ ...position(node, this.#lines), message });
  }

  #reportAt(offset: number, message: string): void {
    const { line, col } = this.#lines.linePos(offset);
    this.problems.push({ line, column: col, message });
  }
}

/**
 * Where character `offset` of a string scalar's value is in the file: exact for
 * a scalar on one line (plain, or quoted with its escapes), else the scalar's start.
 */
function offsetInFile(node: Scalar.Parsed, offset: number, text: string): number {
  const [start, end] = node.range;
  const source = text.slice(start, end);
  if (/[\r\n]/.test(source)) return start;
  if (node.type === "PLAIN") return source === node.value ? start + offset : start;
  if (node.type !== "QUOTE_SINGLE" && node.type !== "QUOTE_DOUBLE") return start;
  let at = start + 1;
  for (let produced = 0; produced < offset && at < end - 1; ) {
    if (node.type === "QUOTE_SINGLE" && text[at] === "'") {
      at += 2; // '' stands for '
      produced += 1;
    } else if (node.type === "QUOTE_DOUBLE" && text[at] === "\\") {
      const digits = ({ x: 2, u: 4, U: 8 } as Record<string, number>)[text[at + 1]] ?? 0;
      const code = digits > 0 ? Number.parseInt(text.slice(at + 2, at + 2 + digits), 16) : 0;
      at += 2 + digits;
      produced += code > 0xffff ? 2 : 1;
    } else {
      at += 1;
      produced += 1;
    }
  }
  return at;
}

function position(node: ParsedNode | null, lines: LineCounter): { line: number; column: number } {
  if (!node?.range) return { line: 0, column: 0 };
  const { line, col } = lines.linePos(node.range[0]);
  return { line, column: col };
}

function yamlProblem(error: YAMLError, lines: LineCounter): PipelineProblemInfo {
  const { line, col } = lines.linePos(error.pos[0]);
  let message = `invalid YAML: ${error.message.charAt(0).toLowerCase()}${error.message.slice(1)}`;
  if (error.code === "MULTIPLE_DOCS") message = "invalid YAML: a pipeline file holds a single document; remove the extra '---'";
  return { line, column: col, message };
}

/** Every repeated scalar key in every mapping of the document but 'jobs', at the repeat (a job defined twice is a rule's). */
function duplicateKeys(doc: Doc, lines: LineCounter): PipelineProblemInfo[] {
  const problems: PipelineProblemInfo[] = [];
  const root = doc.contents;
  const jobs = isMap(root) ? root.items.find((pair) => isScalar(pair.key) && pair.key.value === "jobs")?.value : undefined;
  const jobsMap = isAlias(jobs) ? jobs.resolve(doc) : jobs;
  visit(doc, {
    Map(_, map) {
      if (map === jobsMap) return;
      const firsts = new Map<unknown, Scalar>();
      for (const key of map.items.map((pair) => pair.key).filter(isScalar)) {
        const first = firsts.get(key.value);
        if (first === undefined) {
          firsts.set(key.value, key);
          continue;
        }
        const here = lines.linePos(key.range?.[0] ?? 0);
        const there = lines.linePos(first.range?.[0] ?? 0);
        const message = `duplicate key '${String(key.value)}'; it is already defined at line ${there.line}, column ${there.col}`;
        problems.push({ line: here.line, column: here.col, message });
      }
    },
  });
  return problems;
}

const INTEGER = /^[-+]?(\d+|0x[0-9a-fA-F]+|0o[0-7]+)$/;

/** For a number written in quotes, where a number is expected. */
function unquoteHint(node: ParsedNode | null): string {
  return isScalar(node) && typeof node.value === "string" && /^[-+]?\d+(\.\d+)?$/.test(node.value) ? "; write it without quotes" : "";
}

/** A key without a value, as in `a:` */
function isEmpty(node: ParsedNode | null): boolean {
  return node === null || (isScalar(node) && node.source === "");
}

/** The text of a string, number or boolean scalar, as written. */
function scalarText(node: ParsedNode | null): string | undefined {
  if (!isScalar(node)) return undefined;
  const value = node.value;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return node.source ?? String(value);
  return undefined;
}

/** What a node is, for "expected X, got Y" messages. */
function describe(node: ParsedNode | null): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isAlias(node)) return `an alias to a missing anchor (*${node.source})`;
  const value = node?.value ?? null;
  if (value === null) return node?.source ? "null" : "nothing";
  if (typeof value === "string") return value === "" ? "an empty string" : `a string (${JSON.stringify(value)})`;
  return `a ${typeof value} (${node?.source ?? String(value)})`;
}
