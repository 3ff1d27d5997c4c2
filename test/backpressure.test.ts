// Limits answer resource_exhausted instead of piling work up, and lose nothing.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { postJson, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { waitForRun, RunState } from "@otto/sdk";

describe("backpressure", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 1, env: { OTTO_MAX_ACTIVE_RUNS: "2", OTTO_MAX_WATCHERS: "1" } });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("refuses a run past OTTO_MAX_ACTIVE_RUNS with resource_exhausted, and accepts again once runs end", async () => {
    const slow = "name: slow\njobs:\n  wait:\n    steps:\n      - run: sleep 300\n";
    const first = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: slow });
    const second = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: slow });
    assert.equal(first.status, 200, first.text);
    assert.equal(second.status, 200, second.text);

    const refused = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: slow });
    assert.equal(refused.status, 429);
    assert.equal(refused.json.code, "resource_exhausted");
    assert.match(refused.json.message, /2 runs are in progress/);

    const { runs } = await otto.client.runs.listRuns({ pageSize: 10 });
    assert.equal(runs.length, 2, "the refused run was not stored");

    for (const r of [first, second]) await otto.client.runs.cancelRun({ runId: r.json.run.id });
    for (const r of [first, second]) assert.equal((await waitForRun(otto.client, r.json.run.id)).state, RunState.CANCELED);

    const quick = "name: quick\njobs:\n  one:\n    steps:\n      - run: 'true'\n";
    const accepted = await waitFor("a submission to be accepted again", async () => {
      const r = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: quick });
      return r.status === 200 ? r.json.run.id : undefined;
    });
    assert.equal((await waitForRun(otto.client, accepted)).state, RunState.SUCCEEDED);
  });

  it("frees a watcher's place when its client goes away mid-stream (OTTO_MAX_WATCHERS=1)", async () => {
    const gated = "name: gated\njobs:\n  wait:\n    steps:\n      - run: sleep 300\n";
    const submitted = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: gated });
    assert.equal(submitted.status, 200, submitted.text);
    const runId = submitted.json.run.id;
    try {
      // Three watchers in turn, each leaving after its first event; the run
      // stays open, so each stream ends only because its client left.
      for (let i = 0; i < 3; i++) {
        const leaving = new AbortController();
        const seen = await waitFor(`watcher ${i + 1} to be let in`, async () => {
          try {
            for await (const message of otto.client.runs.watchRun({ runId }, { signal: leaving.signal, timeoutMs: 0 })) {
              return message.event!.seq;
            }
          } catch (err) {
            if (/too many/.test((err as Error).message)) return undefined;
            throw err;
          } finally {
            leaving.abort();
          }
        }, 10_000);
        assert.equal(seen, 1n);
      }
    } finally {
      await otto.client.runs.cancelRun({ runId });
      assert.equal((await waitForRun(otto.client, runId)).state, RunState.CANCELED);
    }
  });
});
