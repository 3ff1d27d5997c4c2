import assert from "node:assert/strict";
import type { Run, RunEvent, RunJob, RunState } from "@otto/gen/v1/run_pb";
import { runStateName } from "@otto/contracts/run-state";
import { watchRun, type OttoClient } from "@otto/sdk";

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

// The whole journal of a finished run, through the public WatchRun.
export async function journalOf(otto: { client: OttoClient }, runId: string): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  for await (const event of watchRun(otto.client, runId, AbortSignal.timeout(30_000))) events.push(event);
  return events;
}
