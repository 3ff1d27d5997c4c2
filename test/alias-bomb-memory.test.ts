// An alias bomb within the alias limit: 200 KB of YAML whose 98 aliases would
// make a 20 MB IR. The parser refuses it as resource_exhausted, at the alias
// where it grows too large, and neither it nor the gateway keeps the memory
// it took.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { postJson, startTestOtto, waitFor, type TestOtto } from "./helpers/otto.ts";

// 100 steps of about 2 KB anchored once, then reused by 98 more jobs.
const bomb = [
  "name: bomb",
  "jobs:",
  "  base:",
  "    steps: &s",
  ...Array.from({ length: 100 }, (_, i) => `      - run: echo ${i} ${"x".repeat(2000)}`),
  ...Array.from({ length: 98 }, (_, i) => `  j${i}:\n    steps: *s`),
].join("\n");

const normal = "name: normal\njobs:\n  a:\n    steps:\n      - run: echo fine\n";

// Resident memory in MiB, from /proc/<pid>/status.
function rssMiB(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  assert.ok(kib, `VmRSS of ${pid}`);
  return Number(kib[1]) / 1024;
}

// A process may hold on to what one refused request took, within this; before
// the parser bounded its output, the gateway grew by about 470 MiB and the
// parser by about 300 MiB, and neither came back. The parser's own work on
// one 200 KB file (the YAML library's tree of it) is a few tens of MiB.
const slackMiB = 64;

describe("an alias bomb within the alias limit", () => {
  let otto: TestOtto;
  const pidOf = (name: string) => otto.supervisor.pid(name)!;

  before(async () => {
    otto = await startTestOtto({ agents: 0 });
  });
  after(async () => otto?.stopAndClean());

  it("is refused as resource_exhausted, and the gateway's and the parser's memory comes back", async () => {
    assert.ok(bomb.length < 256 * 1024, "within the pipeline size limit");
    assert.equal(bomb.match(/\*s/g)!.length, 98, "within the alias limit");
    // Warm up both processes with pipelines that parse, then take their resting size.
    for (let i = 0; i < 5; i++) {
      const warm = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: normal });
      assert.equal(warm.status, 200, warm.text);
    }
    const before = { gateway: rssMiB(pidOf("gateway")), parser: rssMiB(pidOf("parser")) };

    let peak = { ...before };
    for (let i = 0; i < 10; i++) {
      const refused = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: bomb, fileName: "bomb.yml" });
      assert.equal(refused.status, 429, refused.text);
      assert.equal(refused.json.code, "resource_exhausted");
      assert.equal(
        refused.json.message,
        "bomb.yml:114:12: with each alias counted as a copy of its anchor, the pipeline grows past 1 MiB of text here; a pipeline needs far less",
      );
      peak = { gateway: Math.max(peak.gateway, rssMiB(pidOf("gateway"))), parser: Math.max(peak.parser, rssMiB(pidOf("parser"))) };
    }
    const settled = await waitFor(
      `the gateway and the parser within ${slackMiB} MiB of ${JSON.stringify(before)} MiB`,
      () => {
        const now = { gateway: rssMiB(pidOf("gateway")), parser: rssMiB(pidOf("parser")) };
        return now.gateway - before.gateway < slackMiB && now.parser - before.parser < slackMiB && now;
      },
      30_000,
      500,
    );
    console.log(`RSS MiB before ${JSON.stringify(before)}, peak ${JSON.stringify(peak)}, after ${JSON.stringify(settled)}`);

    const after = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: normal });
    assert.equal(after.status, 200, after.text);
    assert.equal(after.json.run.state, "RUN_STATE_QUEUED");
    for (const p of otto.supervisor.info()) assert.equal(p.restarts, 0, `${p.name} restarted`);
  });
});
