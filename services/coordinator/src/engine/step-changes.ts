import { Code, ConnectError } from "@connectrpc/connect";
import type { Change } from "./apply-changes.ts";
import type { StepRow } from "./job-steps.ts";
import { isFinal, RunState } from "./states.ts";

export interface StepReport {
  stepIndex: number;
  state: RunState;
  exitCode?: number;
  // When the step reached the state by the agent's clock, in milliseconds
  // since the epoch (absent: when the change is written).
  atMs?: number;
}

// The changes an attempt's step reports make, in order. Steps only move
// forward (queued, running, final), so a batch sent again after a lost
// answer changes nothing the second time. `steps` is updated to the states
// the changes leave.
export function stepChanges(job: string, steps: StepRow[], reports: StepReport[]): Change[] {
  const byPosition = new Map(steps.map((step) => [step.position, step]));
  const changes: Change[] = [];
  for (const report of reports) {
    const step = byPosition.get(report.stepIndex);
    if (!step) throw new ConnectError(`job ${job} has no step ${report.stepIndex}`, Code.InvalidArgument);
    if (report.state === RunState.RUNNING ? step.state !== RunState.QUEUED : isFinal(step.state)) continue;
    changes.push({
      entity: "step",
      job,
      position: step.position,
      name: step.name,
      from: step.state,
      to: report.state,
      exitCode: report.exitCode,
      atMs: report.atMs,
    });
    step.state = report.state;
    step.exit_code = report.state === RunState.RUNNING ? null : (report.exitCode ?? null);
  }
  return changes;
}

// Closes the steps a job's end leaves unfinished: one that was running takes
// the job's state (FAILED if the job claims success), one that never ran is
// SKIPPED with a skipped job, else CANCELED.
export function closeUnfinishedSteps(job: string, steps: StepRow[], jobState: RunState): Change[] {
  const changes: Change[] = [];
  for (const step of steps) {
    if (isFinal(step.state)) continue;
    const to =
      step.state === RunState.RUNNING
        ? jobState === RunState.SUCCEEDED
          ? RunState.FAILED
          : jobState
        : jobState === RunState.SKIPPED
          ? RunState.SKIPPED
          : RunState.CANCELED;
    changes.push({ entity: "step", job, position: step.position, name: step.name, from: step.state, to });
    step.state = to;
  }
  return changes;
}

// Puts every step of a job back in the queue, for its next attempt.
export function requeueSteps(job: string, steps: StepRow[]): Change[] {
  const changes: Change[] = [];
  for (const step of steps) {
    if (step.state === RunState.QUEUED) continue;
    changes.push({ entity: "step", job, position: step.position, name: step.name, from: step.state, to: RunState.QUEUED });
    step.state = RunState.QUEUED;
    step.exit_code = null;
  }
  return changes;
}
