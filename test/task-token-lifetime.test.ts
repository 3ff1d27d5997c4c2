// Task tokens die with their attempt: once the attempt has ended (completed,
// handed back, its lease lapsed) or its agent was revoked, its token writes
// neither log chunks nor artifacts; and no token outlives the job's longest
// possible run. The test plays the agent itself: it joins with the join
// token and takes tasks with AcquireTask, as an attacker holding one would.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { RunState, waitForRun } from "@otto/sdk";
import { postJson, request, startTestOtto, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("task token lifetime", () => {
  let otto: TestOtto;
  const urlOf = (name: string) => otto.supervisor.info().find((p) => p.name === name)!.url!;
  const call = (base: string, method: string, body: unknown, token: string) =>
    postJson(base, `/otto.v1.${method}`, body, { authorization: `Bearer ${token}` });

  // An agent of the test's own, with a label no other agent has.
  const joinAgent = async (agentId: string) => {
    const joinToken = (await readFile(join(otto.dataDir, "agent-join.token"), "utf8")).trim();
    const joined = await postJson(urlOf("registry"), "/otto.v1.RegistryService/JoinAgent", { joinToken, agentId }, { authorization: null });
    assert.equal(joined.status, 200, joined.text);
    return { agentId, credential: joined.json.credential as string };
  };
  type Agent = Awaited<ReturnType<typeof joinAgent>>;
  const submit = async (label: string, steps: string) => {
    const yaml = `name: tokens\njobs:\n  held:\n    runs-on: [${label}]\n    artifacts: [out.txt]\n    steps:\n${steps}`;
    const submitted = await call(otto.gatewayUrl, "RunService/SubmitRun", { pipelineYaml: yaml }, otto.adminToken!);
    assert.equal(submitted.status, 200, submitted.text);
    return submitted.json.run.id as string;
  };
  const acquire = async (agent: Agent, label: string) => {
    const answer = await call(
      urlOf("coordinator-1"),
      "AgentService/AcquireTask",
      { agentId: agent.agentId, labels: [label], waitMs: 20_000, slots: 4, cpu: 4, memoryBytes: String(2 ** 30), slot: 0, incarnation: randomUUID() },
      agent.credential,
    );
    assert.equal(answer.status, 200, answer.text);
    assert.ok(answer.json.task, "a task was handed out");
    return answer.json.task as { taskId: string; attempt: number; runId: string; job: string; taskToken: string };
  };
  type Task = Awaited<ReturnType<typeof acquire>>;

  // What the holder of a task token tries: a log chunk, a log close, an
  // artifact upload URL (replacing one and adding another), recording an upload.
  const ref = (task: Task) => ({ runId: task.runId, job: task.job, attempt: task.attempt });
  const objects = (method: string, body: unknown, task: Task) => call(urlOf("objects"), method, body, task.taskToken);
  const appendLog = (task: Task, seq: number) => objects("LogStoreService/AppendLog", { ...ref(task), seq, text: `line ${seq}\n` }, task);
  const closeLog = (task: Task, seq: number) => objects("LogStoreService/CloseLog", { ...ref(task), finalSeq: seq, finalText: "last\n" }, task);
  const uploadUrl = (task: Task, name: string) => objects("ArtifactStoreService/CreateArtifactUpload", { ...ref(task), name, size: 3 }, task);
  const recordUpload = (task: Task, name: string) => objects("ArtifactStoreService/CompleteArtifactUpload", { ...ref(task), name }, task);

  const assertRefused = async (task: Task, why: string) => {
    const answers = {
      appendLog: await appendLog(task, 2),
      closeLog: await closeLog(task, 2),
      replaceArtifact: await uploadUrl(task, "out.txt"),
      newArtifact: await uploadUrl(task, "new.txt"),
      recordUpload: await recordUpload(task, "out.txt"),
    };
    for (const [what, answer] of Object.entries(answers)) {
      assert.equal(answer.json?.code, "failed_precondition", `${what} with the token of ${why}: ${answer.status} ${answer.text}`);
      assert.match(answer.json.message, /has ended \(or its agent was revoked\)/);
    }
  };
  const assertWrites = async (task: Task) => {
    const appended = await appendLog(task, 1);
    assert.equal(appended.status, 200, appended.text);
    const upload = await uploadUrl(task, "out.txt");
    assert.equal(upload.status, 200, upload.text);
    const put = await request(upload.json.url, { method: "PUT", headers: { "content-length": "3" }, body: "abc" });
    assert.ok(put.status < 300, `storage took the upload: ${put.status} ${put.text}`);
    const recorded = await recordUpload(task, "out.txt");
    assert.equal(recorded.status, 200, recorded.text);
    // An upload URL handed out lives minutes, not the token's hours.
    const lifetime = Date.parse(upload.json.expiresAt) - Date.now();
    assert.ok(lifetime > 0 && lifetime <= 5 * 60_000, `upload URL lives ${lifetime} ms`);
  };
  const complete = (agent: Agent, task: Task, state: string) =>
    call(urlOf("coordinator-1"), "AgentService/CompleteTask", { taskId: task.taskId, attempt: task.attempt, state }, agent.credential);
  const artifactsOf = async (runId: string) => (await otto.client.artifacts.listArtifacts({ runId })).artifacts.map((a) => `${a.name}@${a.attempt}:${a.size}`);

  before(async () => {
    // Short leases, so a lapsed one is seen soon.
    process.env.OTTO_TASK_LEASE_MS = "2000";
    try {
      otto = await startTestOtto({ agents: 1 });
    } finally {
      delete process.env.OTTO_TASK_LEASE_MS;
    }
  });

  after(async () => {
    await otto?.stopAndClean();
  });

  it("refuses the token of a completed attempt, of a run that SUCCEEDED", async () => {
    const agent = await joinAgent("probe-done");
    const runId = await submit("probe-done", "      - run: 'true'\n");
    const task = await acquire(agent, "probe-done");
    await assertWrites(task);
    const done = await complete(agent, task, "RUN_STATE_SUCCEEDED");
    assert.equal(done.status, 200, done.text);
    const final = await waitForRun(otto.client, runId);
    assert.equal(final.state, RunState.SUCCEEDED);
    await assertRefused(task, "a completed attempt");
    assert.deepEqual(await artifactsOf(runId), ["out.txt@1:3"], "the artifact is neither replaced nor joined by another");
  });

  it("refuses the token of an attempt handed back, while the next attempt's token writes", async () => {
    const agent = await joinAgent("probe-back");
    const runId = await submit("probe-back", "      - run: 'true'\n");
    const first = await acquire(agent, "probe-back");
    const handedBack = await call(urlOf("coordinator-1"), "AgentService/HandBackTask", { taskId: first.taskId, attempt: first.attempt, agentId: agent.agentId }, agent.credential);
    assert.equal(handedBack.status, 200, handedBack.text);
    await assertRefused(first, "an attempt handed back");
    const second = await acquire(agent, "probe-back");
    assert.equal(second.attempt, first.attempt + 1);
    await assertWrites(second);
    await assertRefused(first, "an attempt handed back, with its successor running");
    assert.equal((await complete(agent, second, "RUN_STATE_SUCCEEDED")).status, 200);
    assert.equal((await waitForRun(otto.client, runId)).state, RunState.SUCCEEDED);
  });

  it("refuses the token of an attempt whose lease lapsed", async () => {
    const agent = await joinAgent("probe-lost");
    const runId = await submit("probe-lost", "      - run: 'true'\n");
    const task = await acquire(agent, "probe-lost");
    await assertWrites(task);
    // No heartbeat: the coordinator's sweeper ends the attempt.
    const final = await waitForRun(otto.client, runId);
    assert.equal(final.state, RunState.FAILED);
    assert.match(final.jobs[0].message, /lost/);
    await assertRefused(task, "an attempt whose lease lapsed");
  });

  it("refuses the token of a revoked agent's running attempt", async () => {
    const agent = await joinAgent("probe-revoked");
    const runId = await submit("probe-revoked", "      - run: 'true'\n");
    const task = await acquire(agent, "probe-revoked");
    await assertWrites(task);
    await otto.client.admin.revokeAgent({ agentId: agent.agentId });
    await assertRefused(task, "a revoked agent's running attempt");
    assert.deepEqual(await artifactsOf(runId), ["out.txt@1:3"]);
    await waitFor("the revoked agent's attempt to end", async () => (await otto.client.runs.getRun({ runId })).run?.jobs[0].state === RunState.FAILED);
  });

  it("bounds a token's life by the job's longest possible run, not by a week", async () => {
    const agent = await joinAgent("probe-ttl");
    const expiryOf = (task: Task) => JSON.parse(Buffer.from(task.taskToken.slice("otto_task_".length).split(".")[0], "base64url").toString()).e * 1000;

    await submit("probe-ttl", "      - run: 'true'\n        timeout: 30s\n      - run: 'true'\n        timeout: 90s\n");
    const timed = await acquire(agent, "probe-ttl");
    const timedLife = (expiryOf(timed) - Date.now()) / 1000;
    assert.ok(timedLife >= 120 - 5 && timedLife <= 120 + 15 * 60, `steps with timeouts of 30 s and 90 s: the token lives ${timedLife} s`);
    assert.equal((await complete(agent, timed, "RUN_STATE_SUCCEEDED")).status, 200);

    await submit("probe-ttl", "      - run: 'true'\n        timeout: 30s\n      - run: 'true'\n");
    const open = await acquire(agent, "probe-ttl");
    const openLife = (expiryOf(open) - Date.now()) / 1000;
    assert.ok(openLife >= 6 * 3600 - 5 && openLife <= 6 * 3600 + 15 * 60, `a step without a timeout: the token lives ${openLife} s (the 6 h default)`);
    assert.equal((await complete(agent, open, "RUN_STATE_SUCCEEDED")).status, 200);
  });
});
