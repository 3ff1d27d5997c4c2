// An agent on another machine: in a network namespace from which only the
// gateway's public address (198.18.0.0/15, on the host end of a veth pair)
// can be reached. It joins with the public URL, the CA and a join token
// alone, runs jobs and keeps their artifacts; its link is cut for less than
// a task lease (the job finishes), then for longer (the job runs again on
// another agent, and when the link comes back the stale agent's late reports
// are refused and its step is stopped: nothing finishes twice).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RunState, TokenKind, runStateName, pipeline, submit, submitAndWait, waitForRun, readLogLines } from "@otto/sdk";
import { startTestOtto, stepsSharedDir, waitFor, type TestOtto } from "./helpers/otto.ts";
import { createNetns, type Netns } from "./helpers/netns.ts";

const repoRoot = join(import.meta.dirname, "..");
const leaseMs = 4_000;
const made = createNetns();

async function freePort(host: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, host, resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function logOf(otto: TestOtto, runId: string, job: string): Promise<string> {
  const lines: string[] = [];
  for await (const line of readLogLines(otto.client, runId, job, { raw: true })) lines.push(line.text);
  return lines.join("\n");
}

describe("an agent on another host, reaching Otto only through its public URL", { skip: typeof made === "string" ? made : false }, () => {
  const netns = made as Netns;
  let otto: TestOtto;
  let remote: ChildProcess;
  let remoteLog = "";
  let workDir: string;
  let shared: string;

  before(async () => {
    const port = await freePort(netns.hostAddress);
    otto = await startTestOtto({
      publicUrl: `https://${netns.hostAddress}:${port}`,
      agents: 1,
      agentSlots: 1,
      agentLabels: ["linux", "local", "pool"],
      env: { OTTO_TASK_LEASE_MS: String(leaseMs) },
    });
    shared = await stepsSharedDir(otto, "multi-host");
    workDir = await mkdtemp(join(tmpdir(), "otto-remote-agent-"));
    const { token: joinToken } = await otto.client.admin.createToken({ kind: TokenKind.JOIN, name: "the other host" });
    // Nothing of this machine's environment: what an agent on a build host has.
    const env = {
      PATH: process.env.PATH!,
      HOME: workDir,
      OTTO_URL: otto.gatewayUrl,
      OTTO_CA_FILE: otto.caFile!,
      OTTO_AGENT_JOIN_TOKEN: joinToken,
      OTTO_AGENT_ID: "remote-1",
      OTTO_AGENT_LABELS: "linux,remote,pool",
      OTTO_AGENT_SLOTS: "1",
      OTTO_AGENT_WORK_DIR: workDir,
      OTTO_AGENT_SANDBOX_SHARE: otto.stepsDir,
    };
    remote = spawn(netns.exec[0], [...netns.exec.slice(1), process.execPath, "--disable-warning=ExperimentalWarning", "--conditions=otto-source", "services/agent/src/main.ts"], {
      cwd: repoRoot,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    remote.stdout!.setEncoding("utf8").on("data", (text: string) => (remoteLog += text));
    remote.stderr!.setEncoding("utf8").on("data", (text: string) => (remoteLog += text));
    await waitFor("the remote agent to join and be ready", async () => remoteLog.includes('"agent ready"') || remote.exitCode !== null, 60_000);
    assert.equal(remote.exitCode, null, `the remote agent is running:\n${remoteLog}`);
  });

  after(async () => {
    if (remote && remote.exitCode === null) {
      const exited = new Promise((resolve) => remote.once("exit", resolve));
      remote.kill("SIGTERM");
      const timer = setTimeout(() => remote.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    }
    await otto?.stopAndClean();
    if (workDir) await rm(workDir, { recursive: true, force: true });
    netns?.remove?.();
  });

  it("cannot reach anything of Otto's but the public address from its namespace", () => {
    const internal = otto.supervisor.info().filter((p) => p.url && p.name !== "gateway" && p.name !== "s3" && !p.name.startsWith("agent-"));
    assert.ok(internal.length >= 4, "registry, parser, objects and a coordinator run on the host");
    for (const p of internal) {
      const probe = spawnSync(netns.exec[0], [...netns.exec.slice(1), "curl", "-sk", "--max-time", "2", `${p.url}/healthz`], { encoding: "utf8" });
      assert.notEqual(probe.status, 0, `${p.name} (${p.url}) is out of the namespace's reach`);
    }
    const gateway = spawnSync(netns.exec[0], [...netns.exec.slice(1), "curl", "-s", "--cacert", otto.caFile!, "--max-time", "5", `${otto.gatewayUrl}/healthz`], { encoding: "utf8" });
    assert.equal(gateway.stdout, "ok\n", `the public URL answers from the namespace, its certificate naming ${netns.hostAddress}: ${gateway.stderr}`);
  });

  it("runs a job asking for its label there, and keeps its artifact where the namespace can fetch it", async () => {
    const run = await submitAndWait(
      otto.client,
      pipeline("where")
        .job("there", { runsOn: ["remote"], steps: ["ls /sys/class/net", "echo made on the other host > out.txt"], artifacts: ["out.txt"] })
        .build(),
    );
    assert.equal(run.state, RunState.SUCCEEDED, await logOf(otto, run.id, "there"));
    assert.equal(run.jobs[0].agentId, "remote-1");
    const log = await logOf(otto, run.id, "there");
    assert.match(log, new RegExp(`^${netns.nsInterface}$`, "m"), "the step saw the namespace's own interface");
    assert.doesNotMatch(log, new RegExp(netns.hostInterface), "and not the host's");

    const { url } = await otto.client.artifacts.getArtifactUrl({ runId: run.id, job: "there", name: "out.txt" });
    assert.ok(url.includes(`//${netns.hostAddress}:`), `the presigned URL names storage at the public host: ${url}`);
    const fetched = spawnSync(netns.exec[0], [...netns.exec.slice(1), "curl", "-sf", "--max-time", "5", url], { encoding: "utf8" });
    assert.equal(fetched.stdout, "made on the other host\n", `fetched from the namespace: ${fetched.stderr}`);
  });

  it("finishes a job through a cut shorter than its lease", async () => {
    const gate = join(shared, "short-cut-gate");
    const started = join(shared, "short-cut-started");
    const runId = (
      await submit(otto.client, pipeline("short-cut").job("held", { runsOn: ["remote"], steps: [`touch ${started}; while [ ! -f ${gate} ]; do sleep 0.05; done; echo through`] }).build())
    ).id;
    await waitFor("the step to start on the remote agent", async () => (await readFile(started).then(() => true, () => false)));
    netns.cut();
    try {
      // The fault itself lasts a quarter of the lease.
      await new Promise((resolve) => setTimeout(resolve, leaseMs / 4));
    } finally {
      netns.restore();
    }
    await writeFile(gate, "");
    const run = await waitForRun(otto.client, runId);
    assert.equal(run.state, RunState.SUCCEEDED, await logOf(otto, runId, "held"));
    assert.equal(run.jobs[0].attempt, 1, "the same attempt finished");
    assert.equal(run.jobs[0].agentId, "remote-1");
  });

  it("runs a job again elsewhere after a cut longer than its lease, and refuses the stale agent when it is back", async () => {
    const marks = join(shared, "long-cut-marks");
    const gate = join(shared, "long-cut-gate");
    const localGate = join(shared, "local-busy-gate");
    // The host's agent is kept busy, so that the first attempt goes to the remote one.
    const busy = await submit(otto.client, pipeline("busy").job("hold", { runsOn: ["local"], steps: [`while [ ! -f ${localGate} ]; do sleep 0.05; done`] }).build());
    await waitFor("the host's agent to be busy", async () => (await otto.client.runs.getRun({ runId: busy.id })).run?.jobs[0].state === RunState.RUNNING);
    const step = `echo "start $OTTO_AGENT_ID $OTTO_ATTEMPT" >> ${marks}; while [ ! -f ${gate} ]; do sleep 0.05; done; echo "done $OTTO_AGENT_ID $OTTO_ATTEMPT" >> ${marks}`;
    const runId = (await submit(otto.client, pipeline("long-cut").job("moved", { runsOn: ["pool"], retry: { max: 1, agentLost: true }, steps: [step] }).build())).id;
    await waitFor("the first attempt to start on the remote agent", async () => (await readFile(marks, "utf8").catch(() => "")).includes("start remote-1 1")).catch(async (err) => {
      const job = (await otto.client.runs.getRun({ runId })).run?.jobs[0];
      throw new Error(`${err.message}; the job is ${runStateName(job?.state ?? RunState.UNSPECIFIED)} on ${job?.agentId || "no agent"}; the remote agent's log ends:\n${remoteLog.slice(-3000)}`);
    });
    await writeFile(localGate, "");
    netns.cut();
    try {
      await waitFor("the job to start again on the host's agent", async () => (await readFile(marks, "utf8").catch(() => "")).includes("start agent-1 2"), 60_000);
    } finally {
      netns.restore();
    }
    await waitFor("the remote agent to hear that its attempt was taken away", async () => remoteLog.includes("task taken away"), 30_000);
    await writeFile(gate, "");
    const run = await waitForRun(otto.client, runId);
    assert.equal(run.state, RunState.SUCCEEDED, await logOf(otto, runId, "moved"));
    assert.equal(run.jobs[0].attempt, 2);
    assert.equal(run.jobs[0].agentId, "agent-1");
    const lines = (await readFile(marks, "utf8").catch(() => "")).trim().split("\n");
    assert.deepEqual(lines.filter((line) => line.startsWith("done")), ["done agent-1 2"], `only the second attempt finished: ${lines.join(" | ")}`);
    assert.equal(lines.filter((line) => line.startsWith("start")).length, 2, "and no third attempt began");
    assert.equal((await waitForRun(otto.client, busy.id)).state, RunState.SUCCEEDED);
  });
});
