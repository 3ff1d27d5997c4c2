// A new task wakes one waiting agent poll, not all of them; when the woken
// agent cannot take it (wrong labels), the wake-up goes on to another agent
// at once instead of leaving the task until some poll times out.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { request, startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

describe("claim wake-ups", () => {
  let otto: TestOtto;
  before(async () => {
    // One coordinator, so both agents' polls wait in the same place; one slot
    // each, so the agent that just ran a job queues up behind the other.
    otto = await startTestOtto({
      coordinators: 1,
      agents: 2,
      agentSlots: 1,
      agentLabels: (agent) => (agent === 1 ? ["linux", "small"] : ["linux", "gpu"]),
    });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("starts a job only one agent can run at once, whichever agent's poll is woken first", async () => {
    for (let i = 1; i <= 3; i++) {
      const submittedAt = Date.now();
      const run = await submit(otto.client, pipeline(`gpu-${i}`).job("train", { runsOn: ["gpu"], steps: ["true"] }).build());
      const final = await waitForRun(otto.client, run.id);
      assert.equal(final.state, RunState.SUCCEEDED);
      assert.equal(final.jobs[0].agentId, "agent-2");
      const waited = timestampDate(final.jobs[0].startedAt!).getTime() - submittedAt;
      assert.ok(waited < 5_000, `job ${i} started ${waited} ms after its submit, not when a poll ran out (20 s)`);
    }
  });

  it("wakes no agent for a task none of them has the labels for", async () => {
    const emptyClaims = async () => {
      const url = otto.supervisor.info().find((p) => p.name.startsWith("coordinator"))!.url!;
      const text = (await request(`${url}/metrics`)).text;
      return Number(/^otto_claims_total\{outcome="empty"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const before = await emptyClaims();
    const unclaimable = [];
    for (let i = 1; i <= 10; i++) unclaimable.push(await submit(otto.client, pipeline(`arm-${i}`).job("build", { runsOn: ["arm"], steps: ["true"] }).build()));
    // A task an agent can take, after them: once it has run, every wake-up
    // the earlier ones made has been handled.
    const run = await submit(otto.client, pipeline("small").job("build", { runsOn: ["small"], steps: ["true"] }).build());
    assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED);
    const wasted = (await emptyClaims()) - before;
    assert.ok(wasted < 8, `${wasted} claims found nothing: agents were woken for tasks they cannot take`);
    for (const queued of unclaimable) await otto.client.runs.cancelRun({ runId: queued.id });
  });
});
