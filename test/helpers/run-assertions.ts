import assert from "node:assert/strict";
import type { Run, RunJob, RunState } from "../../gen/otto/v1/run_pb.ts";
import { runStateName } from "../../services/kit/src/run-state.ts";

export function jobOf(run: Run, name: string): RunJob {
  const job = run.jobs.find((j) => j.name === name);
  assert.ok(job, `run has a job ${name}`);
  return job;
}

export function assertState(thing: { name?: string; state: RunState; message?: string }, expected: RunState) {
  assert.equal(
    runStateName(thing.state),
    runStateName(expected),
    `${thing.name ?? "run"} is ${runStateName(thing.state)}${thing.message ? `: ${thing.message}` : ""}`,
  );
}
