// The limits and name patterns of a pipeline, read from the protovalidate
// rules on proto/otto/v1/pipeline.proto, so that they are written once.
import { getOption, type DescField } from "@bufbuild/protobuf";
import { field as validateField, type FieldRules, type StringRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { ApprovalSchema, ConcurrencySchema, MatrixValueSchema, PipelineJobSchema, PipelineSchema, PipelineStepSchema, ResourcesSchema, RetryPolicySchema } from "@otto/gen/v1/pipeline_pb";

function rules(field: DescField): FieldRules["type"] {
  return getOption(field, validateField).type;
}

function stringRules(type: FieldRules["type"] | undefined, where: string): StringRules {
  if (type?.case !== "string") throw new Error(`pipeline.proto: ${where} has no string rules`);
  return type.value;
}

function repeatedRules(field: DescField) {
  const type = rules(field);
  if (type.case !== "repeated") throw new Error(`pipeline.proto: ${field.name} has no repeated rules`);
  return type.value;
}

function stringOf(field: DescField): StringRules {
  return stringRules(rules(field), field.name);
}

function itemsOf(field: DescField): StringRules {
  return stringRules(repeatedRules(field).items?.type, `${field.name}'s items`);
}

function keysOf(field: DescField): StringRules {
  const type = rules(field);
  if (type.case !== "map") throw new Error(`pipeline.proto: ${field.name} has no map rules`);
  return stringRules(type.value.keys?.type, `${field.name}'s keys`);
}

function mapValues(field: DescField): FieldRules["type"] | undefined {
  const type = rules(field);
  if (type.case !== "map") throw new Error(`pipeline.proto: ${field.name} has no map rules`);
  return type.value.values?.type;
}

function int32Range(type: FieldRules["type"] | undefined, where: string): { min: number; max: number } {
  if (type?.case !== "int32" || type.value.greaterThan.case !== "gte" || type.value.lessThan.case !== "lte") {
    throw new Error(`pipeline.proto: ${where} has no int32 gte/lte rules`);
  }
  return { min: type.value.greaterThan.value, max: type.value.lessThan.value };
}

function cpuMax(): number {
  const type = rules(ResourcesSchema.field.cpu);
  if (type.case !== "double" || type.value.lessThan.case !== "lte") throw new Error("pipeline.proto: cpu has no lte rule");
  return type.value.lessThan.value;
}

// A job's name is the name a pipeline gives it, ^[first][rest]{0,N}, then,
// for an expansion of its matrix, an optional "[key=value,...]": the rules
// of the name as written are the first part of job.name's pattern.
function writtenNameRules(expanded: string): { pattern: RegExp; chars: number } {
  const parts = /^\^(\[[^\]]+\])(\[[^\]]+\])\{0,(\d+)\}\(/.exec(expanded);
  if (!parts) throw new Error(`pipeline.proto: the job name's pattern ${expanded} does not start with ^[...][...]{0,N}(`);
  return { pattern: new RegExp(`^${parts[1]}${parts[2]}*$`), chars: Number(parts[3]) + 1 };
}

const job = PipelineJobSchema.field;
const pattern = (rules: StringRules) => new RegExp(rules.pattern);
const written = writtenNameRules(stringOf(job.name).pattern);

export const pipelineLimits = {
  pipelineNameChars: Number(stringOf(PipelineSchema.field.name).maxLen),
  jobs: Number(repeatedRules(PipelineSchema.field.jobs).maxItems),
  // A name as a pipeline writes it ("test").
  jobName: written.pattern,
  jobNameChars: written.chars,
  // A name in the IR: as written, or an expansion's ("test[node=20,os=linux]").
  expandedJobNameChars: Number(stringOf(job.name).maxLen),
  matrixKeys: Number(repeatedRules(job.matrix).maxItems),
  matrixKey: pattern(stringOf(MatrixValueSchema.field.key)),
  matrixKeyChars: Number(stringOf(MatrixValueSchema.field.key).maxLen),
  matrixValue: pattern(stringOf(MatrixValueSchema.field.value)),
  matrixValueChars: Number(stringOf(MatrixValueSchema.field.value).maxLen),
  envName: pattern(keysOf(job.env)),
  steps: Number(repeatedRules(job.steps).maxItems),
  stepNameChars: Number(stringOf(PipelineStepSchema.field.name).maxLen),
  runBytes: Number(stringOf(PipelineStepSchema.field.run).maxBytes),
  locks: Number(repeatedRules(job.locks).maxItems),
  lockName: pattern(itemsOf(job.locks)),
  lockNameChars: Number(itemsOf(job.locks).maxLen),
  lockLimit: int32Range(mapValues(job.lockLimits), "lock limits"),
  secrets: Number(repeatedRules(job.secrets).maxItems),
  secretName: pattern(itemsOf(job.secrets)),
  secretNameChars: Number(itemsOf(job.secrets).maxLen),
  artifacts: Number(repeatedRules(job.artifacts).maxItems),
  artifactNameChars: Number(itemsOf(job.artifacts).maxLen),
  retries: int32Range(rules(RetryPolicySchema.field.max), "retry max"),
  exitCodes: int32Range(repeatedRules(RetryPolicySchema.field.exitCodes).items?.type, "exit codes"),
  cpu: cpuMax(),
  approvalMessageChars: Number(stringOf(ApprovalSchema.field.message).maxLen),
  concurrencyGroupChars: Number(stringOf(ConcurrencySchema.field.group).maxLen),
  concurrencyLimit: int32Range(rules(ConcurrencySchema.field.limit), "concurrency limit"),
  conditionChars: Number(stringOf(job.condition).maxLen),
};
