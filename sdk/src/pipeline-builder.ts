import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import {
  PipelineJobSchema,
  PipelineSchema,
  PipelineStepSchema,
  type Pipeline,
  type PipelineJob,
} from "../../gen/otto/v1/pipeline_pb.ts";
import { parseDuration } from "../../services/parser/src/duration.ts";
import { deriveStepName } from "../../services/parser/src/parse-pipeline.ts";
import { parseQuantity } from "../../services/parser/src/quantity.ts";

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
  needs?: string[];
  steps: Array<StepSpec | string>;
  // Further attempts after a failure: a count, or the full policy.
  retry?: number | { max: number; exitCodes?: number[]; agentLost?: boolean };
  locks?: string[];
  // Names of secrets the job's steps get as environment variables.
  secrets?: string[];
  // Workspace files the job keeps (relative paths).
  artifacts?: string[];
  // memory: bytes, or a quantity such as "512Mi" or "2G"
  resources?: { cpu?: number; memory?: number | bigint | string };
}

// Builds the same pipeline IR as the YAML parser does:
//   pipeline("hello").job("build", { runsOn: ["linux"], steps: ["make"] }).build()
export class PipelineBuilder {
  readonly #name: string;
  readonly #jobs: PipelineJob[] = [];

  constructor(name: string) {
    this.#name = name;
  }

  job(name: string, spec: JobSpec): this {
    this.#jobs.push(
      create(PipelineJobSchema, {
        name,
        runsOn: spec.runsOn ?? [],
        env: spec.env ?? {},
        needs: spec.needs ?? [],
        steps: spec.steps.map((step) => buildStep(typeof step === "string" ? { run: step } : step)),
        retry: spec.retry === undefined ? undefined : typeof spec.retry === "number" ? { max: spec.retry } : spec.retry,
        locks: spec.locks ?? [],
        secrets: spec.secrets ?? [],
        artifacts: spec.artifacts ?? [],
        resources: spec.resources && { cpu: spec.resources.cpu ?? 0, memoryBytes: memoryBytes(spec.resources.memory) },
      }),
    );
    return this;
  }

  build(): Pipeline {
    return create(PipelineSchema, { name: this.#name, jobs: [...this.#jobs] });
  }
}

export function pipeline(name: string): PipelineBuilder {
  return new PipelineBuilder(name);
}

function buildStep(spec: StepSpec) {
  let timeout;
  if (spec.timeout !== undefined) {
    const parsed = parseDuration(spec.timeout);
    if (!parsed.ok) throw new Error(parsed.message);
    timeout = create(DurationSchema, { seconds: BigInt(parsed.seconds), nanos: parsed.nanos });
  }
  return create(PipelineStepSchema, {
    name: spec.name ?? deriveStepName(spec.run),
    run: spec.run,
    timeout,
    env: spec.env ?? {},
  });
}

function memoryBytes(memory: number | bigint | string | undefined): bigint {
  if (memory === undefined) return 0n;
  if (typeof memory !== "string") return BigInt(memory);
  const parsed = parseQuantity(memory);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.bytes;
}
