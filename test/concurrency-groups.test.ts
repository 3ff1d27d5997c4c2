// Concurrency groups end to end: runs of a group past its limit wait in
// line (GetRun says their place), run one after another in the order they
// came, and cancel-in-progress cancels the running one.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { submit, waitForRun, RunState } from "@otto/sdk";
import { postJson, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("concurrency groups", () => {
  let otto: TestOtto;
  let shared: string;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 4 });
    shared = await stepsSharedDir(otto, "groups");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  // Each run appends its number to `order` when it starts, and holds until
  // its gate file exists.
  const pipelineText = (n: number, extra = "") => `name: deploy-${n}
concurrency:
  group: deploy-prod
${extra}jobs:
  deploy:
    steps:
      - run: 'echo ${n} >> ${shared}/order; while [ ! -f ${shared}/open-${n} ]; do sleep 0.05; done'
`;
  const waitingFor = async (runId: string) => (await otto.client.runs.getRun({ runId })).run!.jobs[0].waitingFor;
  const started = async () => (await readFile(join(shared, "order"), "utf8").catch(() => "")).split("\n").filter(Boolean);

  it("runs one at a time, first in first out, and says each waiting run's place", async () => {
    const runs = [];
    for (const n of [1, 2, 3]) runs.push(await submit(otto.client, pipelineText(n)));
    await waitFor("the first run to start", async () => (await started()).length === 1);
    assert.deepEqual(
      [await waitingFor(runs[1].id), await waitingFor(runs[2].id)].map((w) => w && `${w.reason}: ${w.text}`),
      [
        "concurrency: concurrency group deploy-prod is full (at most 1 at once): place 1 in line",
        "concurrency: concurrency group deploy-prod is full (at most 1 at once): place 2 in line",
      ],
    );
    // The agent has free slots: only the group holds them back.
    for (const n of [1, 2, 3]) await writeFile(join(shared, `open-${n}`), "");
    for (const run of runs) assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED);
    assert.deepEqual(await started(), ["1", "2", "3"]);
  });

  it("cancel-in-progress cancels the running run when a new one comes", async () => {
    const first = await submit(otto.client, pipelineText(4, "  cancel-in-progress: true\n"));
    await waitFor("run 4 to start", async () => (await started()).includes("4"));
    const second = await submit(otto.client, pipelineText(5, "  cancel-in-progress: true\n"));
    const canceled = await waitForRun(otto.client, first.id);
    assert.equal(canceled.state, RunState.CANCELED);
    await waitFor("run 5 to start", async () => (await started()).includes("5"));
    await writeFile(join(shared, "open-5"), "");
    assert.equal((await waitForRun(otto.client, second.id)).state, RunState.SUCCEEDED);
  });

  it("refuses a bad group with the place of the mistake", async () => {
    const bad = `name: x\nconcurrency: deploy-\${{ sha }}\njobs:\n  a:\n    steps: [{run: 'true'}]\n`;
    const answer = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: bad });
    assert.equal(answer.json?.code, "invalid_argument", answer.text);
    assert.match(answer.json.message, /:2:21: unknown expression '\$\{\{ sha \}\}' in a concurrency group; only \$\{\{ branch \}\} may be used there/);
  });
});
