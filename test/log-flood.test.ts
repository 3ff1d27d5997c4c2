// One step printing 100 MB as fast as it can: the job ends SUCCEEDED within
// a short task lease (heartbeats never wait behind the log), a follower
// attached during the flood gets every byte once and in order, the log is
// stored compressed and reads back from its tail, and the agent, objects
// service and gateway stay within a bound of memory. The figures are printed.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import pg from "pg";
import { pipeline, readLogLines, RunState, submit, waitForRun } from "@otto/sdk";
import { runStateName } from "@otto/contracts/run-state";
import { startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { peakRssMb } from "./helpers/process-memory.ts";
import { lineEnds } from "@otto/kit/line-ends";

const count = 12_500_000; // seq prints 101 MB
const command = `seq 1 ${count}`;

describe("a step printing 100 MB", () => {
  let otto: TestOtto;
  let db: pg.Client;
  let runId: string;
  let final: Awaited<ReturnType<typeof waitForRun>>;
  // The output as printed, hashed: the agent's line for the command, then seq's.
  let expected: { bytes: number; sha256: string };
  let followed: { sha256: string; rest: string; lines: number };
  const before_: Record<string, number> = {};
  const pids: Record<string, number> = {};

  before(async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_TASK_LEASE_MS: "3000" } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    for (const name of ["agent-1", "objects", "gateway"]) {
      pids[name] = otto.supervisor.pid(name)!;
      before_[name] = await peakRssMb(pids[name]!);
    }
    const printed = `printf '%s\\n' '$ ${command}'; ${command}`;
    expected = {
      bytes: Number(execFileSync("sh", ["-c", `(${printed}) | wc -c`], { encoding: "utf8" }).trim()),
      sha256: execFileSync("sh", ["-c", `(${printed}) | sha256sum`], { encoding: "utf8" }).split(" ")[0]!,
    };
    const started = Date.now();
    const run = await submit(otto.client, pipeline("flood").job("flood", { steps: [{ name: "flood", run: command }] }).build());
    runId = run.id;
    // Attached before the step starts printing: the log as printed, hashed
    // as it comes up to the output's end; what follows is the agent's line
    // saying how the step ended.
    const hash = createHash("sha256");
    let bytes = 0;
    let rest = "";
    let next = 1;
    for await (const chunk of otto.client.logs.readLog({ runId, job: "flood", attempt: 1, follow: true, raw: true }, { timeoutMs: 0 })) {
      assert.equal(Number(chunk.line), next, "each message goes on from the last one's line");
      const text = Buffer.from(chunk.text);
      const take = Math.max(0, Math.min(text.length, expected.bytes - bytes));
      hash.update(text.subarray(0, take));
      rest += text.subarray(take).toString("utf8");
      bytes += text.length;
      next += lineEnds(text);
    }
    followed = { sha256: hash.digest("hex"), rest, lines: next - 1 };
    final = await waitForRun(otto.client, runId);
    const seconds = (Date.now() - started) / 1000;
    const peaks = Object.fromEntries(await Promise.all(Object.entries(pids).map(async ([name, pid]) => [name, await peakRssMb(pid)])));
    const { rows } = await db.query("SELECT size, lines FROM objects.logs WHERE run_id = $1", [runId]);
    console.log(
      `${command}: ${runStateName(final.state)} after ${seconds.toFixed(1)} s (${(Number(rows[0].size) / 1e6 / seconds).toFixed(1)} MB/s from submit to the follower's end); ` +
        `peak RSS (MB): ${Object.entries(peaks).map(([name, mb]) => `${name} ${before_[name]} -> ${mb}`).join(", ")}`,
    );
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  it("ends SUCCEEDED, its heartbeats not held up by the log", () => {
    assert.equal(final.state, RunState.SUCCEEDED, `${runStateName(final.state)}: ${final.jobs[0]?.message}`);
  });

  it("a follower attached during the flood got every byte once and in order", () => {
    assert.equal(followed.sha256, expected.sha256, "the followed text is the output, whole and in order");
    assert.match(followed.rest, /^exited with code 0 \(\d+ ms\)\n$/);
    assert.equal(followed.lines, count + 2);
  });

  it("stores it compressed, and reads it back from the end", async () => {
    await waitFor("the log archived", async () => (await db.query("SELECT object_key FROM objects.logs WHERE run_id = $1", [runId])).rows[0]?.object_key !== "", 120_000);
    const { rows } = await db.query("SELECT sum(zstd_bytes)::bigint AS stored, max(l.size) AS size FROM objects.log_chunks c JOIN objects.logs l USING (run_id, job, attempt) WHERE run_id = $1", [runId]);
    console.log(`stored ${(Number(rows[0].stored) / 1e6).toFixed(1)} MB for ${(Number(rows[0].size) / 1e6).toFixed(1)} MB printed`);
    assert.ok(Number(rows[0].stored) < Number(rows[0].size) / 2, "compressed");
    const tail: string[] = [];
    for await (const line of readLogLines(otto.client, runId, "flood", { tail: 2, raw: true })) tail.push(`${line.number} ${line.text}`);
    assert.equal(tail[0], `${count + 1} ${count}`);
    assert.match(tail[1]!, new RegExp(`^${count + 2} exited with code 0 \\(\\d+ ms\\)$`));
  });

  it("keeps the agent's, the objects service's and the gateway's memory within a bound", async () => {
    for (const [name, pid] of Object.entries(pids)) {
      const grown = (await peakRssMb(pid)) - before_[name]!;
      assert.ok(grown < 100, `${name}'s peak RSS grew by ${grown} MB`);
    }
  });
});

