// An agent's cpu and memory are reserved with its slot: jobs that together
// need more than an agent offers do not run on it at the same time.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { pipeline, submitAndWait, RunState } from "@otto/sdk";
import { startTestOtto, stepsSharedDir, tailOfLog, type TestOtto } from "./helpers/otto.ts";

describe("resource reservations", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 3, env: { OTTO_AGENT_CPU: "2", OTTO_AGENT_MEMORY_MB: "1024" } });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("never runs two jobs whose cpu or memory would not fit the agent together, while slots allow parallel work", async () => {
    const mark = await stepsSharedDir(otto, "res");
    const timed = (name: string) => ({
      name,
      run: `date +%s%N > "$MARK/${name}.start"; sleep 0.6; date +%s%N > "$MARK/${name}.end"`,
    });
    const ir = pipeline("resources")
      .job("cpu1", { env: { MARK: mark }, resources: { cpu: 2 }, steps: [timed("cpu1")] })
      .job("cpu2", { env: { MARK: mark }, resources: { cpu: 1.5 }, steps: [timed("cpu2")] })
      .job("mem1", { env: { MARK: mark }, resources: { memory: "768Mi" }, steps: [timed("mem1")] })
      .job("mem2", { env: { MARK: mark }, resources: { memory: "512Mi" }, steps: [timed("mem2")] })
      .build();
    const run = await submitAndWait(otto.client, ir);
    assert.equal(run.state, RunState.SUCCEEDED);

    const span = async (name: string) => ({
      start: BigInt((await readFile(join(mark, `${name}.start`), "utf8")).trim()),
      end: BigInt((await readFile(join(mark, `${name}.end`), "utf8")).trim()),
    });
    const overlap = (a: { start: bigint; end: bigint }, b: { start: bigint; end: bigint }) => a.start < b.end && b.start < a.end;
    const [cpu1, cpu2, mem1, mem2] = await Promise.all(["cpu1", "cpu2", "mem1", "mem2"].map(span));
    assert.equal(overlap(cpu1, cpu2), false, "2 + 1.5 cores do not fit an agent with 2");
    assert.equal(overlap(mem1, mem2), false, "768Mi + 512Mi do not fit an agent with 1024Mi");
    const parallel = [cpu1, cpu2].some((c) => [mem1, mem2].some((m) => overlap(c, m)));
    assert.ok(parallel, "jobs that fit together did run side by side");

    const db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query("SELECT count(*)::int AS n FROM coordinator.reservations");
      assert.equal(rows[0].n, 0, "every reservation was released");
    } finally {
      await db.end();
    }
  });
});
