// Why a job waits: GetRun (and otto get) says, for each job not started,
// what it waits for: its needs, an approval, an agent with its labels, a
// lock another job holds, a free slot.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { submit, waitForRun, RunState } from "@otto/sdk";
import { runCli } from "./helpers/cli.ts";
import { startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("why a job waits", () => {
  let otto: TestOtto;
  let gate: string;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 2, agentLabels: ["linux"] });
    gate = await stepsSharedDir(otto, "gate");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  const blocked = () => `while [ ! -f ${gate}/open ]; do sleep 0.05; done`;
  const reasons = async (runId: string) => {
    const { run } = await otto.client.runs.getRun({ runId });
    return Object.fromEntries(run!.jobs.filter((j) => j.waitingFor).map((j) => [j.name, `${j.waitingFor!.reason}: ${j.waitingFor!.text}`]));
  };

  it("names the needs, the approval, the missing agent, the held lock and the busy slots", async () => {
    // The holder takes lock prod and one slot; the filler the other slot.
    const holder = await submit(otto.client, `name: holder\njobs:\n  hold:\n    locks: [prod]\n    steps: [{run: '${blocked()}'}]\n`);
    const filler = await submit(otto.client, `name: filler\njobs:\n  fill:\n    steps: [{run: '${blocked()}'}]\n`);
    await waitFor("both to run", async () => {
      const states = await Promise.all([holder.id, filler.id].map(async (runId) => (await otto.client.runs.getRun({ runId })).run!.state));
      return states.every((state) => state === RunState.RUNNING);
    });
    const waiting = await submit(
      otto.client,
      `name: waiting
jobs:
  deploy:
    locks: [prod]
    steps: [{run: 'true'}]
  gpu:
    runs-on: [gpu]
    steps: [{run: 'true'}]
  after:
    needs: [deploy, gpu]
    steps: [{run: 'true'}]
  anything:
    steps: [{run: 'true'}]
  ask:
    approval: {message: "May I?"}
    steps: [{run: 'true'}]
`,
    );
    const why = await reasons(waiting.id);
    assert.deepEqual(why, {
      deploy: `lock: lock prod is held by run ${holder.id}, job hold`,
      gpu: "no_agent: no live agent with the labels [gpu]",
      after: "needs: waiting for deploy, gpu to finish",
      anything: "slots: all 2 slots of the 1 live agent are busy",
      ask: "approval: waiting for approval: May I?",
    });
    const shown = await runCli(["get", waiting.id], { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! });
    assert.match(shown.stdout, /job gpu: QUEUED \(no live agent with the labels \[gpu\]\)/);

    await writeFile(join(gate, "open"), "");
    for (const run of [holder, filler]) assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED);
    await otto.client.runs.cancelRun({ runId: waiting.id });
    const final = await waitForRun(otto.client, waiting.id);
    assert.equal(final.jobs.find((j) => j.name === "deploy")?.waitingFor, undefined, "a job that ran waits for nothing");
  });

  it("WatchRun sends why jobs wait first, and again when it changes, also for a change in another run", async () => {
    await rm(join(gate, "open"), { force: true });
    const holder = await submit(otto.client, `name: holder\njobs:\n  hold:\n    locks: [stage]\n    steps: [{run: '${blocked()}'}]\n`);
    await waitFor("the holder to run", async () => (await otto.client.runs.getRun({ runId: holder.id })).run!.state === RunState.RUNNING);
    const waiting = await submit(otto.client, `name: waiting\njobs:\n  deploy:\n    locks: [stage]\n    steps: [{run: 'true'}]\n  after:\n    needs: [deploy]\n    steps: [{run: 'while [ ! -f ${gate}/after ]; do sleep 0.05; done'}]\n`);
    const seen: string[][] = [];
    for await (const { event, waits } of otto.client.runs.watchRun({ runId: waiting.id, withWaits: true }, { timeoutMs: 0 })) {
      if (!waits) continue;
      const shown = waits.jobs.map((w) => `${w.job} ${w.waitingFor!.reason}: ${w.waitingFor!.text}`);
      seen.push(shown);
      // The holder's lock is released by the holder's run, not this one.
      if (seen.length === 1) await writeFile(join(gate, "open"), "");
      if (shown.length === 0) break;
      assert.equal(event, undefined);
    }
    assert.deepEqual(seen[0], [`deploy lock: lock stage is held by run ${holder.id}, job hold`, "after needs: waiting for deploy to finish"]);
    assert.deepEqual(seen.at(-1), [], "once everything has started, nothing waits");
    await writeFile(join(gate, "after"), "");
    assert.equal((await waitForRun(otto.client, waiting.id)).state, RunState.SUCCEEDED);
  });

  it("names the jobs holding every place of a lock with a limit, and the next one takes a place once one is free", async () => {
    await rm(join(gate, "open"), { force: true });
    const pool = `locks: [{name: test-db, limit: 2}]`;
    const holders = [
      await submit(otto.client, `name: first\njobs:\n  hold:\n    ${pool}\n    steps: [{run: '${blocked()}'}]\n`),
      await submit(otto.client, `name: second\njobs:\n  hold:\n    ${pool}\n    steps: [{run: '${blocked()}'}]\n`),
    ];
    await waitFor("both holders to run, each in a place of the lock", async () => {
      const runs = await Promise.all(holders.map(async (run) => (await otto.client.runs.getRun({ runId: run.id })).run!));
      return runs.every((run) => run.state === RunState.RUNNING);
    });
    const third = await submit(otto.client, `name: third\njobs:\n  use:\n    ${pool}\n    steps: [{run: 'true'}]\n`);
    // In the order they took their places, which two claims at once may take either way.
    const [a, b] = holders.map((run) => `run ${run.id}, job hold`);
    assert.ok(
      [`lock: all 2 places of lock test-db are held, by ${a}; ${b}`, `lock: all 2 places of lock test-db are held, by ${b}; ${a}`].includes((await reasons(third.id)).use),
      (await reasons(third.id)).use,
    );
    await writeFile(join(gate, "open"), "");
    for (const run of [...holders, third]) assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED);
  });
});
