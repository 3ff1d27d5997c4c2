// A step's start and finish are when its process started and ended, by the
// agent's clock, not when the agent's report of them reached the coordinator:
// steps whose changes travel together in one report keep their own times.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";
import { followLogs, pipeline, submit, waitForRun, RunState, type Run } from "@otto/sdk";
import { startTestOtto, stepsSharedDir, tailOfLog, type TestOtto } from "./helpers/otto.ts";
import { assertState, jobOf } from "./helpers/run-assertions.ts";

describe("step times", () => {
  let otto: TestOtto;
  let run: Run;
  let gateOpenedAt: number;

  before(async () => {
    // Every step change of the job waits in the agent for one report: the
    // changes reach the coordinator together, with the job's completion.
    otto = await startTestOtto({ agents: 1, env: { OTTO_AGENT_REPORT_GATHER_MS: "600000" } });
    const gate = await stepsSharedDir(otto, "times");
    const submitted = await submit(
      otto.client,
      pipeline("times")
        .job("timed", {
          steps: [
            { name: "quick", run: "true" },
            { name: "gated", run: `echo waiting for the gate; while [ ! -f ${gate}/open ]; do sleep 0.05; done` },
          ],
        })
        .build(),
    );
    for await (const line of followLogs(otto.client, submitted.id, "timed", { signal: AbortSignal.timeout(60_000) })) {
      if (line.endsWith("| waiting for the gate")) break;
    }
    gateOpenedAt = Date.now();
    await writeFile(join(gate, "open"), "");
    run = await waitForRun(otto.client, submitted.id, AbortSignal.timeout(60_000));
    assertState(run, RunState.SUCCEEDED);
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  const ms = (t: Timestamp | undefined, what: string) => {
    assert.ok(t, `${what} is set`);
    return timestampMs(t);
  };

  it("keeps each step's own start and finish, in the order they happened", () => {
    const job = jobOf(run, "timed");
    const [quick, gated] = job.steps;
    const times = {
      jobStarted: ms(job.startedAt, "the job's start"),
      quickStarted: ms(quick!.startedAt, "quick's start"),
      quickFinished: ms(quick!.finishedAt, "quick's finish"),
      gatedStarted: ms(gated!.startedAt, "gated's start"),
      gateOpened: gateOpenedAt,
      gatedFinished: ms(gated!.finishedAt, "gated's finish"),
      jobFinished: ms(job.finishedAt, "the job's finish"),
    };
    const shown = JSON.stringify(times);
    assert.ok(times.jobStarted <= times.quickStarted, `the first step starts after the job was claimed: ${shown}`);
    assert.ok(times.quickStarted <= times.quickFinished, `quick finishes after it starts: ${shown}`);
    assert.ok(times.quickFinished <= times.gatedStarted, `gated starts after quick finished: ${shown}`);
    assert.ok(times.gatedStarted < times.gateOpened, `gated started before the test opened its gate: ${shown}`);
    assert.ok(times.gateOpened <= times.gatedFinished, `gated finished after its gate opened: ${shown}`);
    // All four changes arrived with the completion, which ended the job.
    assert.ok(times.gatedFinished < times.jobFinished, `gated finished before its report arrived: ${shown}`);
  });
});
