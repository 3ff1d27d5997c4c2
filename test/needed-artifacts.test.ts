// Artifacts between jobs: a job gets the artifacts of the jobs it needs in
// its workspace before its first step (unless a need says `artifacts:
// false`), through URLs only its own task token can ask for; a rerun of
// what failed gives a job the artifacts of the reused job's earlier run.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as Minio from "minio";
import { RunState, submit, submitAndWait, waitForRun, type Run } from "@otto/sdk";
import { runCli } from "./helpers/cli.ts";
import { postJson, request, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("artifacts between jobs", () => {
  let otto: TestOtto;
  let dir: string;
  const urlOf = (name: string) => otto.supervisor.info().find((p) => p.name === name)!.url!;
  const call = (base: string, method: string, body: unknown, token: string) =>
    postJson(base, `/otto.v1.${method}`, body, { authorization: `Bearer ${token}` });
  const logOf = async (runId: string, job: string) => {
    let text = "";
    for await (const chunk of otto.client.logs.readLog({ runId, job })) text += chunk.text;
    return text;
  };
  const job = (run: Run, name: string) => run.jobs.find((j) => j.name === name)!;

  before(async () => {
    otto = await startTestOtto();
    dir = await stepsSharedDir(otto, "needed");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("puts a need's artifacts in the workspace before the first step, as the steps' own files, unless the need says artifacts: false", async () => {
    const run = await submitAndWait(
      otto.client,
      `name: between jobs
jobs:
  build:
    artifacts: [out/app.txt, out/nested/deep/data.txt]
    steps:
      - run: mkdir -p out/nested/deep && echo 'the app' > out/app.txt && seq 1 1000 > out/nested/deep/data.txt
  test:
    needs: [build]
    steps:
      - run: test "$(cat out/app.txt)" = 'the app' && test "$(wc -l < out/nested/deep/data.txt)" -eq 1000
      - run: echo more >> out/app.txt && touch out/nested/new && rm out/nested/deep/data.txt && test "$(stat -c %u out/app.txt)" = "$(id -u)"
  blind:
    needs: [{job: build, artifacts: false}]
    steps:
      - run: test ! -e out && test -z "$(ls -A)"
`,
    );
    assert.equal(run.state, RunState.SUCCEEDED, run.jobs.map((j) => `${j.name}: ${j.message}`).join("; "));
    const log = await logOf(run.id, "test");
    assert.match(log, /otto \| artifacts from build: 2 files, 3\.9 kB\n/);
    assert.ok(log.indexOf("artifacts from build") < log.indexOf("$ test"), "before the first step");
    assert.doesNotMatch(await logOf(run.id, "blind"), /artifacts from/);
  });

  it("records each artifact's SHA-256, and fails a job whose need's artifact was changed in storage", async () => {
    const run = await submit(
      otto.client,
      `name: changed in storage
jobs:
  build:
    artifacts: [out.txt]
    steps: [{run: 'echo "as built" > out.txt'}]
  test:
    needs: [build]
    approval: true
    steps: [{run: 'cat out.txt'}]
`,
    );
    await waitFor("test to wait for approval", async () => job((await otto.client.runs.getRun({ runId: run.id })).run!, "test").state === RunState.WAITING);
    const { artifacts } = await otto.client.artifacts.listArtifacts({ runId: run.id, job: "build" });
    assert.equal(artifacts.length, 1);
    assert.equal(artifacts[0].sha256, createHash("sha256").update("as built\n").digest("hex"), "the SHA-256 of the bytes uploaded");

    // Storage's copy changes behind Otto's back (same length, other bytes).
    const s3 = new URL(urlOf("s3"));
    const keys = JSON.parse(await readFile(join(otto.dataDir, "s3.credentials"), "utf8"));
    const store = new Minio.Client({ endPoint: s3.hostname, port: Number(s3.port), useSSL: false, accessKey: keys.accessKey, secretKey: keys.secretKey });
    const { url } = await otto.client.artifacts.getArtifactUrl({ runId: run.id, job: "build", name: "out.txt" });
    const key = decodeURIComponent(new URL(url).pathname).replace(/^\/otto\//, "");
    await store.putObject("otto", key, Buffer.from("as bUilt\n"));
    const cli = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
    const fetched = await runCli(["artifact", run.id, "build", "out.txt"], cli);
    assert.equal(fetched.code, 2, "the command fails, though the bytes are out");
    assert.match(fetched.stderr, /^otto: artifact out\.txt is not what its job uploaded: its SHA-256 is [0-9a-f]{64}, its upload's was [0-9a-f]{64}$/m);

    await otto.client.runs.approveJob({ runId: run.id, job: "test" });
    const final = await waitForRun(otto.client, run.id);
    assert.equal(job(final, "test").state, RunState.FAILED);
    assert.match(job(final, "test").message, /^artifact out\.txt of build is not what its job uploaded: its SHA-256 is [0-9a-f]{64}, its upload's was [0-9a-f]{64}; the stored object was changed or damaged$/);
    assert.doesNotMatch(await logOf(run.id, "test"), /\$ cat out\.txt/, "no step ran");
  });

  it("lets a task token fetch only the artifacts of the jobs its task needs", async () => {
    // The test plays the agent of the jobs with its own label, as a holder
    // of a task token would.
    const label = `probe-${randomUUID().slice(0, 8)}`;
    const joinToken = (await readFile(join(otto.dataDir, "agent-join.token"), "utf8")).trim();
    const joined = await postJson(urlOf("registry"), "/otto.v1.RegistryService/JoinAgent", { joinToken, agentId: label }, { authorization: null });
    assert.equal(joined.status, 200, joined.text);
    const credential = joined.json.credential as string;
    const submitted = await call(
      otto.gatewayUrl,
      "RunService/SubmitRun",
      {
        pipelineYaml: `name: scoped
jobs:
  build:
    artifacts: [app.txt]
    steps: [{run: echo app > app.txt}]
  other:
    artifacts: [secret.txt]
    steps: [{run: echo secret > secret.txt}]
  probe:
    runs-on: [${label}]
    needs: [build, {job: other, artifacts: false}]
    steps: [{run: 'true'}]
`,
      },
      otto.adminToken!,
    );
    assert.equal(submitted.status, 200, submitted.text);
    const runId = submitted.json.run.id as string;
    // Jobs without labels are any agent's: this one asks only once build
    // and other are done, so that probe is the only task it can be given.
    await waitFor("build and other to succeed", async () => {
      const { run } = await otto.client.runs.getRun({ runId });
      return run!.jobs.filter((j) => j.name !== "probe").every((j) => j.state === RunState.SUCCEEDED);
    });
    const acquired = await call(
      urlOf("coordinator-1"),
      "AgentService/AcquireTask",
      { agentId: label, labels: [label], waitMs: 30_000, slots: 1, cpu: 1, memoryBytes: String(2 ** 30), slot: 0, incarnation: randomUUID() },
      credential,
    );
    assert.equal(acquired.status, 200, acquired.text);
    const task = acquired.json.task as { taskId: string; attempt: number; job: string; taskToken: string; artifactSources: { runId: string; job: string; attempt: number }[] };
    assert.equal(task.job, "probe");
    assert.deepEqual(task.artifactSources, [{ runId, job: "build", attempt: 1 }], "build's, not other's");

    const own = { runId, job: "probe", attempt: task.attempt };
    const list = (base: string, body: object, token = task.taskToken) => call(base, "ArtifactStoreService/ListNeededArtifacts", { ...own, ...body }, token);
    // Through the public endpoint, as the agent asks.
    const listed = await list(otto.gatewayUrl, { sources: task.artifactSources, need: "build" });
    assert.equal(listed.status, 200, listed.text);
    assert.deepEqual(listed.json.artifacts.map((a: any) => [a.artifact.job, a.artifact.name]), [["build", "app.txt"]]);
    assert.equal((await request(listed.json.artifacts[0].url)).text, "app\n");

    const denied = [
      ["a job it needs without its artifacts", await list(urlOf("objects"), { sources: task.artifactSources, need: "other" })],
      ["sources it was not given", await list(urlOf("objects"), { sources: [...task.artifactSources, { runId, job: "other", attempt: 1 }], need: "other" })],
      ["another attempt of its need", await list(urlOf("objects"), { sources: [{ runId, job: "build", attempt: 2 }], need: "build" })],
      ["the same, through the gateway", await list(otto.gatewayUrl, { sources: [{ runId, job: "other", attempt: 1 }], need: "other" })],
      ["another task's name", await list(urlOf("objects"), { job: "build", sources: task.artifactSources, need: "build" })],
      ["an API token", await list(otto.gatewayUrl, { sources: task.artifactSources, need: "build" }, otto.adminToken!)],
    ] as const;
    for (const [what, answer] of denied) assert.equal(answer.json?.code, "permission_denied", `${what}: ${answer.status} ${answer.text}`);
    assert.match(denied[0][1].json.message, /job other is not among the needs whose artifacts this task gets/);
    assert.match(denied[1][1].json.message, /a task reads only the artifacts of the jobs it needs/);

    const completed = await call(urlOf("coordinator-1"), "AgentService/CompleteTask", { taskId: task.taskId, attempt: task.attempt, state: "RUN_STATE_SUCCEEDED" }, credential);
    assert.equal(completed.status, 200, completed.text);
    assert.equal((await waitForRun(otto.client, runId)).state, RunState.SUCCEEDED);
    const ended = await list(urlOf("objects"), { sources: task.artifactSources, need: "build" });
    assert.equal(ended.json?.code, "failed_precondition", "an attempt that ended reads no more");
  });

  it("gives a job of `otto rerun RUN --failed` the artifacts of the reused job's earlier run", async () => {
    const cli = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
    const first = await submitAndWait(
      otto.client,
      `name: rerun with artifacts
jobs:
  build:
    artifacts: [out/app.txt]
    steps: [{run: 'mkdir out && echo "built in $OTTO_RUN_ID" > out/app.txt && echo built >> ${dir}/builds'}]
  test:
    needs: [build]
    steps:
      - run: cat out/app.txt > ${dir}/seen-$OTTO_RUN_ID
      - run: test -f ${dir}/fixed
`,
    );
    assert.equal(first.state, RunState.FAILED);
    assert.deepEqual([job(first, "build").state, job(first, "test").state], [RunState.SUCCEEDED, RunState.FAILED]);

    await writeFile(join(dir, "fixed"), "");
    const r = await runCli(["rerun", first.id, "--failed"], cli);
    assert.equal(r.code, 0, r.stderr);
    const id = /^run ([0-9a-f-]{36}) reruns /.exec(r.stdout)?.[1];
    assert.ok(id, r.stdout);
    const second = await waitForRun(otto.client, id);
    assert.equal(second.state, RunState.SUCCEEDED, second.jobs.map((j) => `${j.name}: ${j.message}`).join("; "));
    assert.equal(job(second, "build").message, `reused from run ${first.id}, attempt 1`);
    assert.equal(await readFile(join(dir, "builds"), "utf8"), "built\n", "build ran once");
    assert.equal(await readFile(join(dir, `seen-${second.id}`), "utf8"), `built in ${first.id}\n`, "the first run's artifact");
    assert.match(await logOf(second.id, "test"), new RegExp(`otto \\| artifacts from build of run ${first.id} \\(attempt 1\\): 1 file, `));
  });
});
