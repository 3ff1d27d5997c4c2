export { createOttoClient, defaultGatewayUrl, type OttoClient, type OttoClientOptions } from "./client.ts";
export { submit, submitAndWait, waitForRun, watchRun, isFinal, finalStates } from "./runs.ts";
export { followLogs, readLogLines, type FollowLogsOptions, type LogLine, type ReadLogOptions } from "./logs.ts";
export { followRun, describeRun } from "./follow-run.ts";
export { pipeline, PipelineBuilder, InvalidPipelineError, type JobSpec, type StepSpec } from "./pipeline-builder.ts";
export type { PipelineProblem } from "@otto/contracts/pipeline-rules";
export { RunState, type Run, type RunJob, type RunStep, type RunEvent } from "@otto/gen/v1/run_pb";
export type { Pipeline } from "@otto/gen/v1/pipeline_pb";
export { runStateName } from "@otto/contracts/run-state";
