// Graceful shutdown with real signals: agents finish or hand back their
// tasks, a second signal forces the exit, coordinators give their shards to
// a peer at once.
import { after, afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { isAlive, request, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { hostPidOfStep } from "./helpers/host-processes.ts";
import { journalOf } from "./helpers/run-assertions.ts";

describe("graceful shutdown", () => {
  let otto: TestOtto | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    if (process.exitCode && otto) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    otto = undefined;
  });
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const markerDir = () => stepsSharedDir(otto!, "shutdown");
  const pidOf = (name: string) => otto!.supervisor.info().find((p) => p.name === name)!.pid!;
  // The step says it started, then waits for a gate file (attempt 1 only).
  // Its shell's host pid is found by its script (its $$ is its namespace's).
  const gatedStep = (dir: string) =>
    `echo started > ${dir}/pid-$OTTO_ATTEMPT; if [ "$OTTO_ATTEMPT" = 1 ]; then while [ ! -f ${dir}/gate ]; do sleep 0.05; done; fi; echo done > ${dir}/done-$OTTO_ATTEMPT`;

  it("hand-back: an agent stopped with SIGTERM stops its step and hands the task back for a new attempt, not counted as a retry", async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_AGENT_ON_STOP: "hand-back" } });
    const dir = await markerDir();
    // Attempt 1 is handed back, attempt 2 fails, and the retry policy (one
    // retry) still allows attempt 3: a hand-back is not a failure.
    const step = `${gatedStep(dir)}; [ "$OTTO_ATTEMPT" != 2 ]`;
    const run = await submit(otto.client, pipeline("handed").job("long", { retry: 1, steps: [step] }).build());
    const stepPid = await waitFor("the step to start", () => hostPidOfStep(step));
    const agent = pidOf("agent-1");
    process.kill(agent, "SIGTERM");
    await waitFor("the agent to exit", () => !isAlive(agent), 10_000);
    assert.equal(isAlive(stepPid), false, "the step's process was stopped");
    const final = await waitForRun(otto.client, run.id);
    assert.equal(final.state, RunState.SUCCEEDED, "attempts 2 and 3 ran on the restarted agent");
    assert.equal(final.jobs[0].attempt, 3);
    await assert.rejects(readFile(join(dir, "done-1")), "attempt 1 never finished");
    await readFile(join(dir, "done-3"));
    const events = await journalOf(otto, run.id);
    assert.ok(events.some((e) => /attempt 2 failed .*retrying as attempt 3 \(retry 1 of 1\)/.test(e.message ?? "")), "attempt 2's failure used the one retry");
    const handedBack = events.find((e) => /handed back by agent agent-1, which is stopping/.test(e.message ?? ""));
    assert.ok(handedBack, "the journal says why the job runs again");
    assert.equal(handedBack.state, RunState.QUEUED);
    assert.match(handedBack.message, /released slot on agent-1/);
  });

  it("finish: an agent stopped with SIGTERM finishes its running task before it exits", async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_AGENT_ON_STOP: "finish" } });
    const dir = await markerDir();
    const run = await submit(otto.client, pipeline("finished").job("long", { steps: [gatedStep(dir), "echo second step"] }).build());
    await waitFor("the step to start", () => readFile(join(dir, "pid-1"), "utf8").catch(() => undefined));
    const agent = pidOf("agent-1");
    process.kill(agent, "SIGTERM");
    // Still running its task: not gone, and no new work taken meanwhile.
    await waitFor("the agent to go unready", async () => {
      const url = otto!.supervisor.info().find((p) => p.name === "agent-1")!.url!;
      return (await request(`${url}/readyz`).then((r) => r.status, () => 0)) === 503;
    });
    assert.equal(isAlive(agent), true);
    await writeFile(join(dir, "gate"), "");
    const final = await waitForRun(otto.client, run.id);
    assert.equal(final.state, RunState.SUCCEEDED);
    await readFile(join(dir, "done-1"));
    await waitFor("the agent to exit once its task is done", () => !isAlive(agent), 10_000);
    const events = await journalOf(otto, run.id);
    assert.equal(events.filter((e) => /handed back/.test(e.message ?? "")).length, 0);
  });

  it("a second SIGTERM makes a finishing agent exit at once, taking its steps' processes along", async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_AGENT_ON_STOP: "finish" } });
    const dir = await markerDir();
    await submit(otto.client, pipeline("forced").job("long", { steps: [gatedStep(dir)] }).build());
    const stepPid = await waitFor("the step to start", () => hostPidOfStep(gatedStep(dir)));
    const agent = pidOf("agent-1");
    process.kill(agent, "SIGTERM");
    await waitFor("the agent to start stopping", async () => /stopping with tasks running/.test(await readFile(otto!.logFile, "utf8")));
    process.kill(agent, "SIGTERM");
    await waitFor("the agent to exit", () => !isAlive(agent), 3_000);
    await waitFor("the launcher to see exit code 130", async () => /agent-1 exited \(code 130\)/.test(await readFile(otto!.logFile, "utf8")));
    await waitFor("the step's processes to go with the agent", () => !isAlive(stepPid), 3_000);
  });

  it("a coordinator stopped with SIGTERM gives its shards to its peer at once, long before its leases lapse", async () => {
    const leaseMs = 30_000;
    otto = await startTestOtto({ coordinators: 2, agents: 1, env: { OTTO_SHARD_LEASE_MS: String(leaseMs) } });
    const db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    try {
      const owners = async () => (await db.query("SELECT owner FROM coordinator.shards WHERE lease_expires_at > now()")).rows.map((r) => r.owner as string);
      const stopping = pidOf("coordinator-1");
      await waitFor("both coordinators to own shards", async () => {
        const all = await owners();
        return all.length === 16 && all.some((o) => o.includes(`-${stopping}-`)) && all.some((o) => !o.includes(`-${stopping}-`));
      });
      const stoppedAt = Date.now();
      process.kill(stopping, "SIGTERM");
      await waitFor("the peer to own every shard", async () => {
        const all = await owners();
        return all.length === 16 && all.every((o) => !o.includes(`-${stopping}-`));
      }, leaseMs);
      const handover = Date.now() - stoppedAt;
      assert.ok(handover < leaseMs / 3, `handover took ${handover} ms; the lease is ${leaseMs} ms`);
      // And the system keeps working on the peer.
      const run = await submit(otto.client, pipeline("after").job("one", { steps: ["true"] }).build());
      assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED);
    } finally {
      await db.end();
    }
  });
});
