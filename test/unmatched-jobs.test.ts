// OTTO_UNMATCHED_JOB_TIMEOUT: a job that no live agent could take (none has
// its labels) fails with that reason instead of waiting forever; one whose
// labels an agent has waits as long as it must.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { submitAndWait, RunState } from "@otto/sdk";
import { startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

describe("jobs no agent could take", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentLabels: ["linux"], env: { OTTO_UNMATCHED_JOB_TIMEOUT: "1s" } });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("fails after the timeout, naming the labels, and skips what needs it", async () => {
    const run = await submitAndWait(
      otto.client,
      `name: gpu\njobs:\n  train:\n    runs-on: [gpu]\n    steps: [{run: 'true'}]\n  report:\n    needs: [train]\n    steps: [{run: 'true'}]\n  lint:\n    runs-on: [linux]\n    steps: [{run: 'sleep 2'}]\n`,
    );
    assert.equal(run.state, RunState.FAILED);
    const job = (name: string) => run.jobs.find((j) => j.name === name)!;
    assert.equal(job("train").state, RunState.FAILED);
    assert.equal(job("train").message, "no live agent with the labels [gpu] for 1s (OTTO_UNMATCHED_JOB_TIMEOUT)");
    assert.equal(job("report").state, RunState.SKIPPED);
    assert.equal(job("lint").state, RunState.SUCCEEDED, "a job whose labels an agent has is never failed for them");
  });
});
