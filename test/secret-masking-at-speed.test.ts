// Secrets are masked at full speed: a step printing a secret on each of
// hundreds of thousands of lines, and in lines of megabytes that the log
// stores across many chunks (one beyond 4 MiB, which reaches the masker in
// pieces), keeps no trace of it; every place it was printed says "***".
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { RunState, submitAndWait } from "@otto/sdk";
import { startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

const secret = "fast-S3cret-value-0123456789";
const floodLines = 300_000;
// Each repeat is 31 bytes: the log's chunk boundaries and the 4 MiB cut fall
// at every position inside the secret, somewhere.
const longRepeats = 100_000;
const longerRepeats = 200_000;

describe("secrets masked at full speed", () => {
  let otto: TestOtto;
  let log: string;
  let seconds: number;

  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    await otto.client.admin.setSecret({ name: "FAST_SECRET", value: secret });
    const yaml = [
      "name: masking-at-speed",
      "jobs:",
      "  print:",
      "    secrets: [FAST_SECRET]",
      "    steps:",
      "      - name: flood",
      `        run: yes "token=$FAST_SECRET ok" | head -n ${floodLines}`,
      "      - name: long",
      `        run: yes "a$FAST_SECRET" | head -n ${longRepeats} | tr -d '\\n'; echo`,
      "      - name: longer",
      `        run: yes "b$FAST_SECRET" | head -n ${longerRepeats} | tr -d '\\n'; echo`,
    ].join("\n");
    const started = Date.now();
    const run = await submitAndWait(otto.client, yaml);
    seconds = (Date.now() - started) / 1000;
    assert.equal(run.state, RunState.SUCCEEDED, run.jobs[0]?.message);
    const texts: string[] = [];
    for await (const chunk of otto.client.logs.readLog({ runId: run.id, job: "print", raw: true })) texts.push(chunk.text);
    log = texts.join("");
    console.log(`${(Buffer.byteLength(log) / 1e6).toFixed(1)} MB of masked log in ${seconds.toFixed(1)} s`);
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("leaves no trace of the secret, whole or cut in two", () => {
    assert.ok(!log.includes(secret), "the secret");
    assert.ok(!log.includes(Buffer.from(secret).toString("base64")), "its base64");
    for (const half of [secret.slice(0, 14), secret.slice(14)]) assert.ok(!log.includes(half), `a half of it: ${half}`);
  });

  it("masks every place it was printed", () => {
    const lines = log.split("\n");
    assert.equal(lines.filter((line) => line === "token=*** ok").length, floodLines);
    assert.ok(lines.includes(`${"a***".repeat(longRepeats)}`), "the long line, whole and masked");
    assert.ok(lines.includes(`${"b***".repeat(longerRepeats)}`), "the line beyond 4 MiB, whole and masked");
  });
});
