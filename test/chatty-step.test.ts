// A step that prints faster than its log can be stored: the job still ends
// with its own result within a short task lease, its log reads back whole and
// in order, and the agent's memory stays bounded while the output waits.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { followLogs, pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { runStateName } from "@otto/contracts/run-state";
import { startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";
import { peakRssMb } from "./helpers/process-memory.ts";

const lines = 3_000_000;

describe("a step printing millions of lines", () => {
  let otto: TestOtto;
  let agentPid: number;
  let agentBeforeMb: number;
  let runId: string;
  let state: RunState;
  let message: string;
  before(async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_TASK_LEASE_MS: "3000" } });
    agentPid = otto.supervisor.pid("agent-1")!;
    agentBeforeMb = await peakRssMb(agentPid);
    const started = Date.now();
    const run = await submit(otto.client, pipeline("chatty").job("chatty", { steps: [{ name: "count", run: `seq 1 ${lines}` }] }).build());
    runId = run.id;
    const final = await waitForRun(otto.client, runId);
    state = final.state;
    message = final.jobs.find((job) => job.name === "chatty")?.message ?? "";
    console.log(
      `seq 1 ${lines}: ${runStateName(state)} after ${Date.now() - started} ms; ` +
        `peak RSS: agent ${agentBeforeMb} -> ${await peakRssMb(agentPid)} MB, objects ${await peakRssMb(otto.supervisor.pid("objects")!)} MB`,
    );
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("ends SUCCEEDED, not lost for want of a heartbeat", () => {
    assert.equal(state, RunState.SUCCEEDED, `${runStateName(state)}: ${message}`);
  });

  it("keeps every line, in order", async () => {
    let expected = 1;
    for await (const line of followLogs(otto.client, runId, "chatty", { follow: false })) {
      const match = / count \| (\d+)$/.exec(line);
      if (!match) continue;
      assert.equal(Number(match[1]), expected, `line ${expected}`);
      expected++;
    }
    assert.equal(expected - 1, lines);
  });

  it("holds the agent's memory to a bound while the output waits to be stored", async () => {
    // 3 million lines are about 120 MB of log; the agent keeps a few MB of it.
    const grownMb = (await peakRssMb(agentPid)) - agentBeforeMb;
    assert.ok(grownMb < 100, `the agent's peak RSS grew by ${grownMb} MB`);
  });
});
