// What the SDK offers in Node and in browsers alike: everything but the
// transport that createOttoClient makes (client.ts, client-browser.ts).
export { defaultGatewayUrl, ottoClientsOver, type OttoClient } from "./clients.ts";
export { submit, submitAndWait, waitForRun, watchRun, isFinal, finalStates } from "./runs.ts";
export { followLogs, readLogLines, type FollowLogsOptions, type LogLine, type ReadLogOptions } from "./logs.ts";
export { followRun, describeRun } from "./follow-run.ts";
export { watchRuns, type WatchRunsOptions, type RunsStreamEvent } from "./events.ts";
export { artifactDownloadPath } from "./artifact-path.ts";
export { pipeline, PipelineBuilder, InvalidPipelineError, type JobSpec, type MatrixSpec, type StepSpec } from "./pipeline-builder.ts";
export type { PipelineProblem } from "@otto/contracts/pipeline-rules";
export { runStateName } from "@otto/contracts/run-state";
export { RunState, type Run, type RunJob, type RunStep, type RunEvent, type RunSource, type PullRequest, type WaitingFor } from "@otto/gen/v1/run_pb";
export type { MatrixValue, Pipeline, PipelineJob, PipelineStep, RetryPolicy, Resources } from "@otto/gen/v1/pipeline_pb";
export {
  RunService,
  type JobWaits,
  type JobWait,
  type WatchRunResponse,
  type WatchRunsResponse,
  type RunsFilter,
  type RunSummary,
  type PipelineStatus,
  type PipelineRun,
} from "@otto/gen/v1/run_service_pb";
export { LogService, type ReadLogResponse } from "@otto/gen/v1/log_service_pb";
export { ArtifactService, type Artifact } from "@otto/gen/v1/artifact_service_pb";
export { AdminService, TokenKind, type TokenInfo, type AgentInfo, type AgentJob } from "@otto/gen/v1/admin_service_pb";
export { AccountService } from "@otto/gen/v1/account_service_pb";
export { ProjectService, type Project, type Forge } from "@otto/gen/v1/project_service_pb";
