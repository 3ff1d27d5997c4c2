// The agent's step reporter: changes gathered into few ReportSteps calls,
// the rest handed to CompleteTask.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { RunState } from "@otto/gen/v1/run_pb";
import { StepReporter, type StepChange } from "@otto/agent/step-reporter";

const at = timestampFromDate(new Date());
const change = (stepIndex: number, state: RunState): StepChange => ({ stepIndex, state, exitCode: 0, at });
const { RUNNING, SUCCEEDED } = RunState;

describe("StepReporter", () => {
  it("sends the changes made while it gathers in one call", async () => {
    const calls: StepChange[][] = [];
    let called!: () => void;
    const firstCall = new Promise<void>((resolve) => (called = resolve));
    const reporter = new StepReporter(async (changes) => {
      calls.push(changes);
      called();
    }, 50);
    reporter.report(change(0, RUNNING));
    reporter.report(change(0, SUCCEEDED));
    reporter.report(change(1, RUNNING));
    await firstCall;
    assert.deepEqual(calls, [[change(0, RUNNING), change(0, SUCCEEDED), change(1, RUNNING)]]);
    assert.deepEqual(await reporter.drain(), []);
  });

  it("hands what is still gathering to drain, without a call", async () => {
    const calls: StepChange[][] = [];
    const reporter = new StepReporter(async (changes) => {
      calls.push(changes);
    }, 60_000);
    reporter.report(change(0, RUNNING));
    reporter.report(change(0, SUCCEEDED));
    assert.deepEqual(await reporter.drain(), [change(0, RUNNING), change(0, SUCCEEDED)], "drain does not wait out the gathering");
    assert.deepEqual(calls, []);
  });

  it("without gathering, sends at once and batches what comes while a call is in flight", async () => {
    const calls: StepChange[][] = [];
    let release!: () => void;
    const inFlight = new Promise<void>((resolve) => (release = resolve));
    const reporter = new StepReporter(async (changes) => {
      calls.push(changes);
      if (calls.length === 1) await inFlight;
    });
    reporter.report(change(0, RUNNING));
    reporter.report(change(0, SUCCEEDED));
    reporter.report(change(1, RUNNING));
    assert.deepEqual(calls, [[change(0, RUNNING)]], "the first change goes at once");
    release();
    // Draining as the task ends: what the call in flight did not carry goes to CompleteTask.
    assert.deepEqual(await reporter.drain(), [change(0, SUCCEEDED), change(1, RUNNING)]);
    assert.equal(calls.length, 1);
  });
});
