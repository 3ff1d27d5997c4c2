// Approvals: a job with `approval:` waits, once its needs are done, until
// someone with runs:write approves it (otto approve) or rejects it; the
// journal names the token; nobody in time: it FAILS.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { submit, waitForRun, RunState, type Run } from "@otto/sdk";
import { runCli } from "./helpers/cli.ts";
import { postJson, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

const pipelineText = (timeout = "1h") => `name: release
jobs:
  build:
    steps: [{run: 'true'}]
  deploy:
    needs: [build]
    approval: {message: "Deploy to production?", timeout: ${timeout}}
    steps: [{run: 'echo deploying'}]
  notify:
    needs: [deploy]
    steps: [{run: 'true'}]
`;

describe("approvals", () => {
  let otto: TestOtto;
  let cli: Record<string, string>;
  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    cli = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  const job = (run: Run, name: string) => run.jobs.find((j) => j.name === name)!;
  const waiting = (runId: string) =>
    waitFor("deploy to wait for approval", async () => {
      const { run } = await otto.client.runs.getRun({ runId });
      return job(run!, "deploy").state === RunState.WAITING ? run! : undefined;
    });
  const journal = async (runId: string) => {
    const lines: string[] = [];
    for await (const { event } of otto.client.runs.watchRun({ runId })) lines.push(`${event!.job} ${event!.message}`);
    return lines;
  };

  it("waits after its needs, goes on when approved with otto approve, and the journal names the token", async () => {
    const { id } = await submit(otto.client, pipelineText());
    const run = await waiting(id);
    assert.equal(job(run, "deploy").message, "waiting for approval: Deploy to production?");
    assert.equal(job(run, "notify").state, RunState.QUEUED);
    const approved = await runCli(["approve", id, "deploy", "--comment", "ship it"], cli);
    assert.equal(approved.code, 0, approved.stderr);
    const final = await waitForRun(otto.client, id);
    assert.equal(final.state, RunState.SUCCEEDED, final.message);
    assert.ok((await journal(id)).some((line) => /^deploy approved by token ".+" \(.+\): ship it$/.test(line)), "the journal names the token");
  });

  it("fails when rejected, canceling what needs it; a job not waiting, or a reader's token, is refused", async () => {
    const { id } = await submit(otto.client, pipelineText());
    await waiting(id);
    const early = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ApproveJob", { runId: id, job: "notify" });
    assert.equal(early.json?.code, "failed_precondition", early.text);
    assert.match(early.json.message, /job notify is QUEUED, not waiting for approval/);
    const { token } = await otto.client.admin.createToken({ name: "reader", scopes: ["runs:read"] });
    const reader = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ApproveJob", { runId: id, job: "deploy" }, { authorization: `Bearer ${token}` });
    assert.equal(reader.json?.code, "permission_denied", reader.text);
    const rejected = await postJson(otto.gatewayUrl, "/otto.v1.RunService/RejectJob", { runId: id, job: "deploy", comment: "not on a Friday" });
    assert.equal(rejected.status, 200, rejected.text);
    const final = await waitForRun(otto.client, id);
    assert.equal(final.state, RunState.FAILED);
    assert.match(job(final, "deploy").message, /^rejected by token ".+" \(.+\): not on a Friday$/);
    assert.equal(job(final, "notify").state, RunState.SKIPPED);
  });

  it("fails a job nobody approved within its timeout", async () => {
    const final = await waitForRun(otto.client, (await submit(otto.client, pipelineText("1s"))).id);
    assert.equal(final.state, RunState.FAILED);
    assert.equal(job(final, "deploy").message, "not approved within 1s");
  });
});
