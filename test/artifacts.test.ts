// Artifacts: files a job keeps, moved between agents, storage and callers by
// presigned URLs, each agent only for its own task.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { RunState, pipeline, submitAndWait } from "@otto/sdk";
import { createTaskTokenSigner } from "@otto/kit/task-token";
import { postJson, request, startTestOtto, type TestOtto } from "./helpers/otto.ts";

const sha256 = (name: string) => createHash("sha256").update(name).digest("hex");

describe("artifacts", () => {
  let otto: TestOtto;
  const urlOf = (name: string) => otto.supervisor.info().find((p) => p.name === name)!.url!;

  before(async () => {
    otto = await startTestOtto();
  });
  after(async () => otto?.stopAndClean());

  it("keeps a job's files, lists them, and hands out a URL for one object at a time", async () => {
    const ir = pipeline("with-artifacts")
      .job("build", {
        artifacts: ["dist/app.txt", "report.xml"],
        steps: ["mkdir -p dist && echo 'the app' > dist/app.txt", "printf '<ok/>' > report.xml"],
      })
      .build();
    const run = await submitAndWait(otto.client, ir);
    assert.equal(run.state, RunState.SUCCEEDED, run.jobs[0].message);
    const { artifacts } = await otto.client.artifacts.listArtifacts({ runId: run.id });
    assert.deepEqual(
      artifacts.map((a) => [a.job, a.attempt, a.name, Number(a.size)]),
      [
        ["build", 1, "dist/app.txt", 8],
        ["build", 1, "report.xml", 5],
      ],
    );
    const { url, artifact } = await otto.client.artifacts.getArtifactUrl({ runId: run.id, job: "build", name: "dist/app.txt" });
    assert.equal(artifact!.name, "dist/app.txt");
    assert.match(url, /X-Amz-Signature=/, "a presigned URL");
    assert.match(url, new RegExp(`/artifacts/${run.id}/build/attempt-1/${sha256("dist/app.txt")}\\?`), "for this one object (the hash of its name)");
    const download = await request(url);
    assert.equal(download.status, 200);
    assert.equal(download.text, "the app\n");
    let log = "";
    for await (const chunk of otto.client.logs.readLog({ runId: run.id, job: "build" })) log += chunk.text;
    assert.match(log, /otto \| artifact dist\/app\.txt stored \(8 bytes\)/);

    const missing = await otto.client.artifacts.getArtifactUrl({ runId: run.id, job: "build", name: "nope.txt" }).catch((err) => err);
    assert.match(String(missing.message), /has no artifact nope\.txt of job build/);
  });

  it("fails a job whose artifact is missing, or leads out of its workspace", async () => {
    const ir = pipeline("bad-artifacts")
      .job("missing", { artifacts: ["never.txt"], steps: ["true"] })
      .job("escape", { artifacts: ["leak.txt"], steps: ["ln -s /etc/hostname leak.txt"] })
      .build();
    const run = await submitAndWait(otto.client, ir);
    const job = (name: string) => run.jobs.find((j) => j.name === name)!;
    assert.equal(job("missing").state, RunState.FAILED);
    assert.equal(job("missing").message, "artifact never.txt was not produced");
    assert.equal(job("escape").state, RunState.FAILED);
    assert.equal(job("escape").message, "artifact leak.txt leads outside the job's workspace; not uploaded");
    assert.deepEqual((await otto.client.artifacts.listArtifacts({ runId: run.id })).artifacts, []);
  });

  it("refuses artifact paths that climb out, in pipelines and at the objects service", async () => {
    const yaml = "name: x\njobs:\n  a:\n    artifacts: [../../etc/passwd, /abs, ok/../../x]\n    steps:\n      - run: 'true'\n";
    const refused = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml });
    assert.equal(refused.json.code, "invalid_argument");
    assert.equal(refused.json.message.match(/must be relative/g)?.length, 3, refused.json.message);

    const tls = {
      cert: await readFile(join(otto.dataDir, "tls", "coordinator-1.pem")),
      key: await readFile(join(otto.dataDir, "tls", "coordinator-1-key.pem")),
      ca: await readFile(join(otto.dataDir, "tls", "ca.pem")),
    };
    const runId = crypto.randomUUID();
    const token = createTaskTokenSigner(tls)({ agentId: "agent-1", runId, job: "a", attempt: 1 }, 60);
    const upload = (body: object) =>
      postJson(urlOf("objects"), "/otto.v1.ArtifactStoreService/CreateArtifactUpload", body, { authorization: `Bearer ${token}` });
    const traversal = await upload({ runId, job: "a", attempt: 1, name: "../b/x", size: 1 });
    assert.equal(traversal.json.code, "invalid_argument");
    assert.match(traversal.json.message, /must be relative/);
    const otherJob = await upload({ runId, job: "b", attempt: 1, name: "x", size: 1 });
    assert.equal(otherJob.json.code, "permission_denied", "a task token is for its own job's artifacts only");
    const huge = await upload({ runId, job: "a", attempt: 1, name: "x", size: 2 * 1024 ** 3 });
    assert.equal(huge.json.code, "resource_exhausted");
    // Signed with a coordinator's key, but for an attempt no coordinator
    // handed out: it is not live, so it uploads nothing (a live attempt's
    // token does: task-token-lifetime.test.ts).
    const own = await upload({ runId, job: "a", attempt: 1, name: "x", size: 1 });
    assert.equal(own.json.code, "failed_precondition", own.text);
    const asUser = await postJson(urlOf("objects"), "/otto.v1.ArtifactStoreService/CreateArtifactUpload", { runId, job: "a", attempt: 1, name: "x", size: 1 }, {
      authorization: `Bearer ${otto.adminToken}`,
    });
    assert.equal(asUser.json.code, "permission_denied");
  });
});
