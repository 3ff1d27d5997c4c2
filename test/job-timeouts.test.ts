// Job timeouts: `timeout:` on a job bounds all its steps together, and
// OTTO_MAX_JOB_DURATION bounds every job, so nothing runs forever: past it
// the running step is stopped and the job FAILS, saying why.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { submitAndWait, RunState, type Run } from "@otto/sdk";
import { startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

describe("job timeouts", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 3, env: { OTTO_MAX_JOB_DURATION: "4s" } });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  const job = (run: Run, name: string) => run.jobs.find((j) => j.name === name)!;

  it("fails a job past its own timeout, the running step stopped, and lets one within it succeed", async () => {
    const run = await submitAndWait(
      otto.client,
      `name: timeouts
jobs:
  slow:
    timeout: 1500ms
    steps:
      - run: 'true'
      - name: forever
        run: sleep 600
      - run: echo never
  quick:
    timeout: 1m
    steps:
      - run: 'true'
`,
    );
    assert.equal(run.state, RunState.FAILED);
    assert.equal(job(run, "slow").state, RunState.FAILED);
    assert.equal(job(run, "slow").message, "job timed out after 1.5s");
    assert.deepEqual(
      job(run, "slow").steps.map((s) => s.state),
      [RunState.SUCCEEDED, RunState.CANCELED, RunState.CANCELED],
    );
    assert.equal(job(run, "quick").state, RunState.SUCCEEDED);
  });

  it("bounds every job by OTTO_MAX_JOB_DURATION, also one whose own timeout is longer", async () => {
    const run = await submitAndWait(
      otto.client,
      `name: unbounded
jobs:
  none:
    steps: [{run: sleep 600}]
  long:
    timeout: 2h
    steps: [{run: sleep 600}]
`,
    );
    assert.equal(job(run, "none").message, "job timed out after 4s");
    assert.equal(job(run, "long").message, "job timed out after 4s");
  });
});
