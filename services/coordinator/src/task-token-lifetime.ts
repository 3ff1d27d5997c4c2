import type { PipelineStep } from "@otto/gen/v1/pipeline_pb";

// How long a task token is valid: as long as its job may run, which is the
// sum of its steps' timeouts when every step has one, and at most the job's
// own timeout (itself at most OTTO_MAX_JOB_DURATION); plus a margin for
// closing the log and uploading artifacts after the last step.
export const taskTokenMarginSeconds = 10 * 60;

export function taskTokenLifetimeSeconds(steps: readonly PipelineStep[], jobTimeoutSeconds: number): number {
  const timeouts = steps.map((step) => (step.timeout ? Number(step.timeout.seconds) + step.timeout.nanos / 1e9 : 0));
  const bounded = timeouts.length > 0 && timeouts.every((seconds) => seconds > 0);
  const job = bounded ? Math.min(Math.ceil(timeouts.reduce((sum, seconds) => sum + seconds, 0)), jobTimeoutSeconds) : jobTimeoutSeconds;
  return Math.ceil(job) + taskTokenMarginSeconds;
}

// The longest the job's steps may run together: its timeout, bounded by the
// longest any job may run.
export function jobTimeoutSeconds(timeout: { seconds: bigint; nanos: number } | undefined, maxJobSeconds: number): number {
  const own = timeout ? Number(timeout.seconds) + timeout.nanos / 1e9 : 0;
  return own > 0 ? Math.min(own, maxJobSeconds) : maxJobSeconds;
}
