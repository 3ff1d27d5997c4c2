// Conditions end to end: what runs after a failure, what is skipped, and a
// cleanup job that runs when the run is canceled.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { submit, submitAndWait, waitForRun, RunState } from "@otto/sdk";
import { runCli } from "./helpers/cli.ts";
import { startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("job conditions", () => {
  let otto: TestOtto;
  let shared: string;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 3 });
    shared = await stepsSharedDir(otto, "conditions");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  const ran = async () => (await readFile(join(shared, "ran"), "utf8").catch(() => "")).split("\n").filter(Boolean).sort();
  const state = (run: { jobs: { name: string; state: RunState }[] }, job: string) => run.jobs.find((j) => j.name === job)?.state;

  it("runs failure() and always() jobs after a failure, skips the rest, and fails the run", async () => {
    const run = await submitAndWait(
      otto.client,
      `name: conditions
jobs:
  build:
    steps: [{run: 'echo build >> ${shared}/ran; exit 3'}]
  test:
    needs: [build]
    steps: [{run: 'echo test >> ${shared}/ran'}]
  report:
    needs: [test]
    if: failure()
    steps: [{run: 'echo report >> ${shared}/ran'}]
  cleanup:
    needs: [test]
    if: \${{ always() }}
    steps: [{run: 'echo cleanup >> ${shared}/ran'}]
  main-only:
    if: branch == 'main'
    steps: [{run: 'echo main-only >> ${shared}/ran'}]
`,
    );
    assert.equal(run.state, RunState.FAILED);
    assert.deepEqual(await ran(), ["build", "cleanup", "report"]);
    assert.equal(state(run, "test"), RunState.SKIPPED);
    assert.equal(state(run, "main-only"), RunState.SKIPPED);
    assert.equal(run.jobs.find((j) => j.name === "main-only")?.message, "skipped: if: branch == 'main' is false");
    const shown = await runCli(["get", run.id], { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! });
    assert.match(shown.stdout, /job test: SKIPPED/);
  });

  it("a cleanup job with always() runs when the run is canceled, and the run ends CANCELED", async () => {
    const run = await submit(
      otto.client,
      `name: cancel-cleanup
jobs:
  long:
    steps: [{run: 'touch ${shared}/long-started; sleep 60'}]
  next:
    needs: [long]
    steps: [{run: 'echo next >> ${shared}/canceled-ran'}]
  cleanup:
    needs: [long]
    if: always()
    steps: [{run: 'echo cleanup >> ${shared}/canceled-ran'}]
`,
    );
    await waitFor("the long job to start", async () => (await readFile(join(shared, "long-started")).then(() => true, () => false)));
    await otto.client.runs.cancelRun({ runId: run.id });
    const final = await waitForRun(otto.client, run.id);
    assert.equal(final.state, RunState.CANCELED);
    assert.deepEqual([state(final, "long"), state(final, "next"), state(final, "cleanup")], [RunState.CANCELED, RunState.CANCELED, RunState.SUCCEEDED]);
    assert.equal(await readFile(join(shared, "canceled-ran"), "utf8"), "cleanup\n");
  });

  it("a run whose jobs succeeded or were skipped has SUCCEEDED", async () => {
    const run = await submitAndWait(otto.client, `name: skipped-ok\njobs:\n  a:\n    steps: [{run: 'true'}]\n  b:\n    needs: [a]\n    if: event == 'push'\n    steps: [{run: 'true'}]\n`);
    assert.equal(run.state, RunState.SUCCEEDED);
    assert.equal(state(run, "b"), RunState.SKIPPED);
  });
});
