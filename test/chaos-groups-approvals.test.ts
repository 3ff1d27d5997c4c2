// Chaos for the lines of concurrency groups and for approvals: coordinators
// killed with -9 while a group's line moves on and while an approval
// arrives. Nothing runs twice, the line keeps its order, and the approved
// job runs once. Every check reads what the steps wrote, not only the API.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { RunState, submit, waitForRun } from "@otto/sdk";
import { startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { journalOf } from "./helpers/run-assertions.ts";

const coordinatorNames = ["coordinator-1", "coordinator-2"];

describe("chaos: concurrency groups and approvals through coordinator kills", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  let shared: string;
  before(async () => {
    otto = await startTestOtto({ coordinators: 2, agents: 1, agentSlots: 4, env: { OTTO_TASK_LEASE_MS: "3000" } });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 2 });
    shared = await stepsSharedDir(otto, "chaos-groups");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto, 150));
    await db?.end().catch(() => {});
    await otto?.stopAndClean();
  });

  const lines = async (file: string) => (await readFile(join(shared, file), "utf8").catch(() => "")).split("\n").filter(Boolean);

  // Kills one coordinator with -9 (the launcher starts it again), only once
  // the other is up and registered, so one always serves.
  const killed: number[] = [];
  const killACoordinator = async (turn: number): Promise<number> => {
    const name = coordinatorNames[turn % 2];
    // A child's URL is known once it said "listening", after it registered;
    // one killed before is up again once it runs under a new pid.
    await waitFor("both coordinators up and registered", () =>
      otto.supervisor.info().filter((c) => coordinatorNames.includes(c.name) && c.pid !== undefined && !killed.includes(c.pid) && c.url).length === 2,
    );
    const pid = otto.supervisor.pid(name)!;
    killed.push(pid);
    process.kill(pid, "SIGKILL");
    return pid;
  };

  it("a group's line keeps its order, and each run runs once, while coordinators are killed as it moves on", async () => {
    const count = 6;
    const runs = [];
    for (let n = 1; n <= count; n++) {
      runs.push(
        await submit(
          otto.client,
          `name: line-${n}\nconcurrency: chaos-line\njobs:\n  step:\n    steps: [{run: 'echo start ${n} >> ${shared}/line; sleep 0.3; echo end ${n} >> ${shared}/line'}]\n`,
        ),
      );
    }
    // Each time the line moves on (a run has started), a coordinator dies.
    let kills = 0;
    for (let started = 1; started <= 4; started++) {
      await waitFor(`run ${started} of the line to start`, async () => (await lines("line")).filter((l) => l.startsWith("start")).length >= started, 60_000);
      await killACoordinator(kills++);
    }
    for (const run of runs) assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED, `run ${run.id}`);
    // Started once each, first in first out, never two at once: each ended before the next started.
    const expected = Array.from({ length: count }, (_, i) => [`start ${i + 1}`, `end ${i + 1}`]).flat();
    assert.deepEqual(await lines("line"), expected);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE concurrency_group = 'chaos-line' AND admitted");
    assert.equal(rows[0].n, count);
  });

  it("an approval sent while a coordinator dies takes effect once: the job runs once, the journal says approved once", async () => {
    const run = await submit(
      otto.client,
      `name: approve\njobs:\n  build:\n    steps: [{run: 'true'}]\n  deploy:\n    needs: [build]\n    approval: true\n    steps: [{run: 'echo deployed >> ${shared}/deploys'}]\n`,
    );
    await waitFor("deploy to wait for approval", async () => {
      const { run: now } = await otto.client.runs.getRun({ runId: run.id });
      return now!.jobs.find((j) => j.name === "deploy")?.state === RunState.WAITING;
    });
    // Sent at the same moment as the kill; tried again while it still waits
    // (an answer lost with its coordinator says nothing of the outcome).
    const approve = () => otto.client.runs.approveJob({ runId: run.id, job: "deploy", comment: "go" }).then(() => "approved", (err: Error) => err.message);
    const [first] = await Promise.all([approve(), killACoordinator(0)]);
    const answers = [first];
    await waitFor("the approval to take effect", async () => {
      const { run: now } = await otto.client.runs.getRun({ runId: run.id });
      if (now!.jobs.find((j) => j.name === "deploy")?.state !== RunState.WAITING) return true;
      answers.push(await approve());
      return false;
    }, 30_000, 200);
    assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED, answers.join("; "));
    assert.deepEqual(await lines("deploys"), ["deployed"]);
    const approvals = (await journalOf(otto, run.id)).filter((event) => event.job === "deploy" && /^approved by/.test(event.message));
    assert.equal(approvals.length, 1, approvals.map((event) => event.message).join("\n"));
  });
});
