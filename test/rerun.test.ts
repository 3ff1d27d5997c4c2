// Rerunning a run: `otto rerun RUN --failed` (RunService.RerunRun with
// failedOnly) makes a new run that reuses the jobs that succeeded and runs
// only the rest; a run still going is refused.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { submit, submitAndWait, waitForRun, RunState, type Run } from "@otto/sdk";
import { runCli } from "./helpers/cli.ts";
import { postJson, startTestOtto, stepsSharedDir, tailOfLog, type TestOtto } from "./helpers/otto.ts";

describe("rerunning what failed", () => {
  let otto: TestOtto;
  let dir: string;
  let cli: Record<string, string>;
  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    dir = await stepsSharedDir(otto, "rerun");
    cli = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  const state = (run: Run, job: string) => run.jobs.find((j) => j.name === job)?.state;

  it("reuses the jobs that succeeded, runs the failed one and what needs it, and links the runs", async () => {
    // flaky fails until the file `fixed` exists; build counts its runs.
    const first = await submitAndWait(
      otto.client,
      `name: rerun me
jobs:
  build:
    steps: [{run: 'echo built >> ${dir}/builds'}]
  flaky:
    steps: [{run: 'test -f ${dir}/fixed'}]
  deploy:
    needs: [build, flaky]
    steps: [{run: 'echo deployed >> ${dir}/deploys'}]
`,
    );
    assert.equal(first.state, RunState.FAILED);
    assert.deepEqual([state(first, "build"), state(first, "flaky"), state(first, "deploy")], [RunState.SUCCEEDED, RunState.FAILED, RunState.SKIPPED]);

    await writeFile(join(dir, "fixed"), "");
    const r = await runCli(["rerun", first.id, "--failed"], cli);
    assert.equal(r.code, 0, r.stderr);
    const id = /^run ([0-9a-f-]{36}) reruns /.exec(r.stdout)?.[1];
    assert.ok(id, r.stdout);
    assert.match(r.stdout, /reused: build/);
    const second = await waitForRun(otto.client, id);
    assert.equal(second.state, RunState.SUCCEEDED, second.message);
    assert.equal(second.rerunOf, first.id);
    assert.equal(second.jobs.find((j) => j.name === "build")?.message, `reused from run ${first.id}, attempt 1`);
    assert.equal(await readFile(join(dir, "builds"), "utf8"), "built\n", "build ran once, in the first run");
    assert.equal(await readFile(join(dir, "deploys"), "utf8"), "deployed\n");
    assert.match((await runCli(["get", id], cli)).stdout, new RegExp(`rerun of ${first.id}`));
  });

  it("refuses to rerun a run that has not finished, with failed_precondition", async () => {
    const running = await submit(otto.client, `name: slow\njobs:\n  wait:\n    steps: [{run: 'while [ ! -f ${dir}/go ]; do sleep 0.05; done'}]\n`);
    const answer = await postJson(otto.gatewayUrl, "/otto.v1.RunService/RerunRun", { runId: running.id, failedOnly: true });
    assert.equal(answer.status, 400, answer.text);
    assert.equal(answer.json.code, "failed_precondition");
    assert.match(answer.json.message, /rerun it once it has finished/);
    await writeFile(join(dir, "go"), "");
    assert.equal((await waitForRun(otto.client, running.id)).state, RunState.SUCCEEDED);
  });
});
