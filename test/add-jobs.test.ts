// Jobs added at run time, end to end on real processes: a sandboxed step
// writes a fragment and runs `otto jobs add` with the step token its agent
// gave it (OTTO_URL, OTTO_TOKEN, OTTO_CA_FILE); the jobs run and the run
// waits for them; a fragment with a mistake fails the step with
// file:line:col lines; the token adds jobs to its own run only, while its
// attempt runs, and opens nothing else.
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { RunState, submit, waitForRun, type OttoClient } from "@otto/sdk";
import { createTaskTokenSigner } from "@otto/kit/task-token";
import { createStepTokenSigner } from "@otto/kit/step-token";
import { postJson, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { assertState, jobOf, journalOf } from "./helpers/run-assertions.ts";

async function logOf(client: OttoClient, runId: string, job: string): Promise<string> {
  let log = "";
  for await (const chunk of client.logs.readLog({ runId, job })) log += chunk.text;
  return log;
}

describe("jobs added at run time", () => {
  let otto: TestOtto;
  let failed = false;
  const urlOf = (name: string) => otto.supervisor.info().find((p) => p.name === name)!.url!;
  const call = (base: string, method: string, body: unknown, token: string) => postJson(base, `/otto.v1.${method}`, body, { authorization: `Bearer ${token}` });
  const stateOf = async (runId: string, job: string) => jobOf((await otto.client.runs.getRun({ runId })).run!, job).state;

  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 3 });
  });
  afterEach((t) => {
    if (!t.passed) failed = true;
  });
  after(async () => {
    if (failed || process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("a step adds jobs with `otto jobs add`; they run as their needs allow, and the run waits for them", async () => {
    const dir = await stepsSharedDir(otto, "grow");
    const gate = join(dir, "open");
    const yaml = `name: grow
jobs:
  gen:
    steps:
      - name: add
        run: |
          cat > more.yml <<'EOF'
          jobs:
            after-gen:
              needs: [gen]
              steps:
                - run: echo "after gen"
            slow:
              steps:
                - run: while [ ! -e ${gate} ]; do sleep 0.05; done; echo "slow done"
          EOF
          otto jobs add more.yml
          otto jobs add more.yml
          echo "token: $OTTO_TOKEN"
`;
    const { id: runId } = await submit(otto.client, yaml);
    await waitFor("gen to succeed and slow to run", async () => (await stateOf(runId, "gen")) === RunState.SUCCEEDED && (await stateOf(runId, "slow")) === RunState.RUNNING);
    const running = (await otto.client.runs.getRun({ runId })).run!;
    assertState(running, RunState.RUNNING);
    assert.deepEqual(running.jobs.map((job) => job.name), ["gen", "after-gen", "slow"]);

    await writeFile(gate, "");
    const run = await waitForRun(otto.client, runId);
    assertState(run, RunState.SUCCEEDED);
    for (const job of run.jobs) assertState(job, RunState.SUCCEEDED);
    const ended = (name: string) => timestampDate(jobOf(run, name).finishedAt!).getTime();
    assert.ok(timestampDate(jobOf(run, "after-gen").startedAt!).getTime() >= ended("gen"), "after-gen ran after gen");
    assert.ok(timestampDate(run.finishedAt!).getTime() >= ended("slow"), "the run ended with slow");

    const log = await logOf(otto.client, runId, "gen");
    assert.match(log, new RegExp(`\\| added to run ${runId}: after-gen, slow$`, "m"), log);
    assert.match(log, new RegExp(`\\| already in run ${runId}, as added before: after-gen, slow$`, "m"), "a repeated add changes nothing");
    assert.match(log, /\| token: \*\*\*$/m, "the step token is masked in the log");
    assert.doesNotMatch(log, /otto_step_/);
    assert.match(await logOf(otto.client, runId, "after-gen"), /\| after gen$/m);
    const added = (await journalOf(otto, runId)).filter((event) => event.message === "added by job gen, attempt 1");
    assert.deepEqual(added.map((event) => event.job), ["after-gen", "slow"], "the journal says who added them");
  });

  it("a fragment with mistakes fails the step, its log naming each at file:line:col, and adds nothing", async () => {
    const yaml = `name: bad-fragment
jobs:
  gen:
    steps:
      - name: add
        run: |
          printf 'jobs:\\n  extra:\\n    needs: [gne]\\n    stepz: []\\n' > more.yml
          otto jobs add more.yml
`;
    const run = await waitForRun(otto.client, (await submit(otto.client, yaml)).id);
    assertState(run, RunState.FAILED);
    assert.equal(jobOf(run, "gen").message, 'step "add" exited with code 1');
    assert.deepEqual(run.jobs.map((job) => job.name), ["gen"]);
    const log = await logOf(otto.client, run.id, "gen");
    assert.match(log, /\| more\.yml:3:13: unknown job 'gne' in needs; did you mean 'gen'\?$/m, log);
    assert.match(log, /\| more\.yml:4:5: unknown key 'stepz' in job 'extra'; did you mean 'steps'\?$/m, log);
  });

  it("the step token adds jobs to its own run only, while its attempt runs, and is refused everywhere else", async () => {
    const dir = await stepsSharedDir(otto, "token");
    const yaml = `name: token
jobs:
  gen:
    steps:
      - run: printf %s "$OTTO_TOKEN" > ${dir}/token; while [ ! -e ${dir}/gen-go ]; do sleep 0.05; done
  hold:
    steps:
      - run: while [ ! -e ${dir}/hold-go ]; do sleep 0.05; done
`;
    const { id: runId } = await submit(otto.client, yaml);
    const token = await waitFor("the step to write its token", () => readFile(join(dir, "token"), "utf8").catch(() => undefined));
    assert.match(token, /^otto_step_/);
    const jobsYaml = "jobs:\n  late:\n    steps: [{ run: 'true' }]\n";
    const other = (await submit(otto.client, "name: other\njobs:\n  x:\n    steps: [{ run: 'true' }]\n")).id;

    const elsewhere = await call(otto.gatewayUrl, "RunService/AddJobs", { runId: other, jobsYaml }, token);
    assert.equal(elsewhere.json?.code, "permission_denied", elsewhere.text);
    assert.match(elsewhere.json.message, new RegExp(`adds jobs only to its own run ${runId}, not to run ${other}`));
    const refusals: Array<[string, string, unknown]> = [
      ["gateway", "RunService/ListRuns", {}],
      ["gateway", "RunService/GetRun", { runId }],
      ["gateway", "RunService/SubmitRun", { pipelineYaml: "name: x\njobs:\n  x:\n    steps: [{ run: 'true' }]\n" }],
      ["gateway", "AgentService/AcquireTask", { agentId: "agent-1", waitMs: 0 }],
      ["gateway", "LogStoreService/AppendLog", { runId, job: "gen", attempt: 1, seq: 1000, text: "forged\n" }],
      ["gateway", "ArtifactStoreService/CreateArtifactUpload", { runId, job: "gen", attempt: 1, name: "x" }],
      ["gateway", "RegistryService/JoinAgent", { joinToken: "otto_join_x", agentId: "agent-9" }],
      ["objects", "LogStoreService/AppendLog", { runId, job: "gen", attempt: 1, seq: 1000, text: "forged\n" }],
      ["coordinator-1", "AgentService/AcquireTask", { agentId: "agent-1", waitMs: 0 }],
      ["coordinator-1", "RunService/AddJobs", { runId, jobsYaml }],
    ];
    for (const [where, method, body] of refusals) {
      const answer = await call(where === "gateway" ? otto.gatewayUrl : urlOf(where), method, body, token);
      assert.equal(answer.json?.code, "permission_denied", `${method} at ${where}: ${answer.status} ${answer.text}`);
    }
    const withApiToken = await call(otto.gatewayUrl, "RunService/AddJobs", { runId, jobsYaml }, otto.adminToken!);
    assert.equal(withApiToken.json?.code, "permission_denied");
    assert.match(withApiToken.json.message, /takes a step token, not an API token/);

    // Signed by another process than a coordinator, or a task token passed off as a step token.
    const tlsOf = async (name: string) => ({
      cert: await readFile(join(otto.dataDir, "tls", `${name}.pem`)),
      key: await readFile(join(otto.dataDir, "tls", `${name}-key.pem`)),
      ca: await readFile(join(otto.dataDir, "tls", "ca.pem")),
    });
    const forged = createStepTokenSigner(await tlsOf("gateway"))({ runId, job: "gen", attempt: 1 }, 60);
    const taskToken = createTaskTokenSigner(await tlsOf("coordinator-1"))({ agentId: "agent-1", runId, job: "gen", attempt: 1 }, 60);
    for (const bad of [forged, taskToken.replace(/^otto_task_/, "otto_step_")]) {
      const answer = await call(otto.gatewayUrl, "RunService/AddJobs", { runId, jobsYaml }, bad);
      assert.equal(answer.json?.code, "unauthenticated", answer.text);
    }
    assert.deepEqual((await otto.client.runs.getRun({ runId })).run!.jobs.map((job) => job.name), ["gen", "hold"], "nothing was added");

    // Its attempt ends while the run goes on; then the run ends too.
    await writeFile(join(dir, "gen-go"), "");
    await waitFor("gen to succeed", async () => (await stateOf(runId, "gen")) === RunState.SUCCEEDED);
    const ended = await call(otto.gatewayUrl, "RunService/AddJobs", { runId, jobsYaml }, token);
    assert.equal(ended.json?.code, "failed_precondition", ended.text);
    assert.match(ended.json.message, /attempt 1 of job gen in run .* has ended: its step token adds jobs only while that attempt runs/);
    await writeFile(join(dir, "hold-go"), "");
    const run = await waitForRun(otto.client, runId);
    assertState(run, RunState.SUCCEEDED);
    const final = await call(otto.gatewayUrl, "RunService/AddJobs", { runId, jobsYaml }, token);
    assert.equal(final.json?.code, "failed_precondition", final.text);
    assert.match(final.json.message, /is SUCCEEDED: jobs are added to a run only while it runs/);
    assert.deepEqual(run.jobs.map((job) => job.name), ["gen", "hold"]);
  });
});
