// A secret printed where the log is cut or coloured: across the 4 MiB split of
// a line too long to come whole, and with a colour change in its middle
// (which a terminal shows whole). Neither it nor a half of it reaches the
// log; the mask and the colours around it do.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { RunState, submitAndWait } from "@otto/sdk";
import { maxLineLength } from "@otto/agent/output-text";
import { startTestOtto, type TestOtto } from "./helpers/otto.ts";

const secret = "S3cr3t-V@lue";
const [first, second] = ["S3cr3t", "-V@lue"];

describe("secrets printed across the line split and across a colour change", () => {
  let otto: TestOtto;

  before(async () => {
    otto = await startTestOtto();
  });
  after(async () => otto?.stopAndClean());

  it("are masked in the job's log, and the colours around them stay", async () => {
    await otto.client.admin.setSecret({ name: "SPLIT_SECRET", value: secret });
    // The secret's first half ends the first 4 MiB of the line; its second half starts the rest.
    const before = maxLineLength - first.length;
    const yaml = [
      "name: masking-boundaries",
      "jobs:",
      "  print:",
      "    secrets: [SPLIT_SECRET]",
      "    steps:",
      "      - name: long",
      `        run: head -c ${before} /dev/zero | tr '\\0' x; printf '%s' "$SPLIT_SECRET"; head -c 1000 /dev/zero | tr '\\0' y; echo`,
      "      - name: coloured",
      `        run: printf 'colour \\033[31m%s\\033[0m%s\\033[32m done\\033[0m\\n' "\${SPLIT_SECRET%%-*}" "-\${SPLIT_SECRET#*-}"`,
    ].join("\n");
    const run = await submitAndWait(otto.client, yaml);
    assert.equal(run.state, RunState.SUCCEEDED, run.jobs[0].message);

    let log = "";
    for await (const chunk of otto.client.logs.readLog({ runId: run.id, job: "print" })) log += chunk.text;
    const texts = (step: string) =>
      log
        .split("\n")
        .filter((line) => line.includes(` ${step} | `))
        .map((line) => line.slice(line.indexOf(` ${step} | `) + step.length + 4));

    // The long line reaches the log whole (in several chunks), the secret masked.
    const long = texts("long").filter((text) => /^[xy*]/.test(text));
    assert.equal(long.length, 1, "the long line is one line of the log");
    const joined = long[0]!;
    assert.equal(joined.length, before + 3 + 1000);
    assert.equal(joined, `${"x".repeat(before)}***${"y".repeat(1000)}`, "the mask where the secret was, no half of it");

    assert.deepEqual(
      texts("coloured").filter((text) => text.startsWith("colour")),
      ["colour \x1b[31m***\x1b[0m\x1b[32m done\x1b[0m"],
      "masked, with its colour, its reset and the next colour kept",
    );
    for (const piece of [secret, first, second]) assert.ok(!log.includes(piece), `the log holds no ${piece}`);
  });
});
