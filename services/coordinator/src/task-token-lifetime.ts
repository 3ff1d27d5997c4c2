import type { PipelineStep } from "@otto/gen/v1/pipeline_pb";

// How long a task token is valid: as long as its job may run, which is the
// sum of its steps' timeouts when every step has one, else the default
// maximum; plus a margin for closing the log and uploading artifacts after
// the last step. (Once jobs have a timeout of their own, it bounds this.)
export const defaultJobMaxSeconds = 6 * 3600;
export const taskTokenMarginSeconds = 10 * 60;

export function taskTokenLifetimeSeconds(steps: readonly PipelineStep[]): number {
  const timeouts = steps.map((step) => (step.timeout ? Number(step.timeout.seconds) + step.timeout.nanos / 1e9 : 0));
  const bounded = timeouts.length > 0 && timeouts.every((seconds) => seconds > 0);
  const job = bounded ? Math.ceil(timeouts.reduce((sum, seconds) => sum + seconds, 0)) : defaultJobMaxSeconds;
  return job + taskTokenMarginSeconds;
}
