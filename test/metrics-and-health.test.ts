// Every process answers /healthz, /readyz and /metrics; the metrics describe
// what the system really did (read from the real processes after real runs).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline, submit, submitAndWait, waitForRun, RunState } from "@otto/sdk";
import { postJson, request, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

const slots = 3;

describe("metrics and health endpoints", () => {
  let otto: TestOtto;
  let gate: string;
  before(async () => {
    otto = await startTestOtto({ coordinators: 2, agents: 1, agentSlots: slots });
    gate = await stepsSharedDir(otto, "gate");
    const ir = pipeline("measured")
      .job("build", { steps: ["echo one", "echo two"] })
      .job("test", { needs: ["build"], steps: ["echo three"] })
      .build();
    const run = await submitAndWait(otto.client, ir);
    assert.equal(run.state, RunState.SUCCEEDED);
    await postJson(otto.gatewayUrl, "/otto.v1.RunService/GetRun", { runId: "not-a-uuid" });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    await rm(gate, { recursive: true, force: true });
  });

  const processes = () => otto.supervisor.info().filter((p) => p.url && p.name !== "s3");
  const scrape = async (name: string) => {
    const url = otto.supervisor.info().find((p) => p.name === name)!.url!;
    const res = await request(`${url}/metrics`);
    assert.equal(res.status, 200);
    return res.text;
  };

  it("answers /healthz and /readyz on every process", async () => {
    assert.ok(processes().length >= 6);
    for (const p of processes()) {
      const health = await request(`${p.url}/healthz`);
      assert.equal(health.status, 200, `${p.name} /healthz`);
      const ready = await request(`${p.url}/readyz`);
      assert.equal(ready.status, 200, `${p.name} /readyz`);
    }
  });

  it("serves Prometheus text with the process's own metrics on every process", async () => {
    for (const p of processes()) {
      const res = await request(`${p.url}/metrics`);
      assert.equal(res.status, 200, p.name);
      assert.match(res.headers["content-type"] ?? "", /^text\/plain/);
      const text = res.text;
      assert.match(text, /^process_cpu_seconds_total \d/m, p.name);
      assert.match(text, /^# TYPE otto_rpc_duration_seconds histogram$/m, p.name);
    }
  });

  it("counts RPCs by method and code", async () => {
    const gateway = await scrape("gateway");
    assert.ok(value(gateway, "otto_rpc_requests_total", { method: "otto.v1.RunService/SubmitRun", code: "ok" }) >= 1);
    assert.ok(value(gateway, "otto_rpc_requests_total", { method: "otto.v1.RunService/GetRun", code: "invalid_argument" }) >= 1);
    assert.ok(value(gateway, "otto_rpc_duration_seconds_count", { method: "otto.v1.RunService/SubmitRun", code: "ok" }) >= 1);
    let completions = 0;
    for (const name of ["coordinator-1", "coordinator-2"]) {
      completions += value(await scrape(name), "otto_rpc_requests_total", { method: "otto.v1.AgentService/CompleteTask", code: "ok" });
    }
    assert.equal(completions, 2, "one CompleteTask per job");
  });

  it("reports shards, agents, slots, queues and reservation waits from the coordinators", async () => {
    const one = await scrape("coordinator-1");
    const two = await scrape("coordinator-2");
    assert.equal(value(one, "otto_shards_owned") + value(two, "otto_shards_owned"), 16);
    assert.ok(value(one, "otto_shards_owned") > 0 && value(two, "otto_shards_owned") > 0);
    assert.equal(value(one, "otto_agents"), 1);
    assert.equal(value(one, "otto_slots", { state: "total" }), slots);
    assert.equal(value(one, "otto_slots", { state: "free" }), slots);
    assert.equal((one.match(/^otto_advance_queue_depth\{queue="advance-\d\d"\} \d+$/gm) ?? []).length, 16);
    assert.equal(value(one, "otto_reservation_wait_seconds_count") + value(two, "otto_reservation_wait_seconds_count"), 2);
  });

  it("times steps on the agent", async () => {
    const agent = await scrape("agent-1");
    assert.equal(value(agent, "otto_step_duration_seconds_count", { state: "SUCCEEDED" }), 3);
    assert.equal(value(agent, "otto_agent_slots"), slots);
  });

  it("shows work in progress: runs and jobs by state, busy slots", async () => {
    const ir = pipeline("held").job("wait", { steps: [`while [ ! -f ${gate}/open ]; do sleep 0.05; done`] }).build();
    const run = await submit(otto.client, ir);
    await waitFor("the run to be RUNNING in the metrics", async () => {
      const text = await scrape("coordinator-1");
      return value(text, "otto_runs", { state: "RUNNING" }) === 1 && value(text, "otto_jobs", { state: "RUNNING" }) === 1;
    });
    // The claim is committed before the agent has the answer: wait for that too.
    await waitFor("the agent to count its busy slot", async () => value(await scrape("agent-1"), "otto_agent_busy_slots") === 1);
    assert.equal(value(await scrape("coordinator-2"), "otto_slots", { state: "free" }), slots - 1);
    await writeFile(join(gate, "open"), "");
    assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED);
    const after = await scrape("coordinator-1");
    assert.equal(value(after, "otto_runs", { state: "RUNNING" }), 0);
    assert.equal(value(after, "otto_slots", { state: "free" }), slots);
  });
});

// The sum of the samples of `name` whose labels include `labels`.
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) sum += Number(match[3]);
  }
  return sum;
}
