// How runs behave end to end on real processes: parallel DAG branches, a
// failing step, a step timeout and cancelling a run.
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { access, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { pipeline, RunState, runStateName, submit, submitAndWait, waitForRun, type Run, type RunJob } from "@otto/sdk";
import { isAlive, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { hostPidsRunning, uniqueSleep } from "./helpers/host-processes.ts";
import { assertState, jobOf } from "./helpers/run-assertions.ts";

// The step of the timeout and cancel tests: a child the test can watch die
// (found by its command line: the step's own pids are of its namespace).
const sleepStep = (seconds: number) => {
  const sleep = uniqueSleep(seconds);
  return { run: `${sleep.command} & wait`, pid: () => hostPidsRunning(sleep.argv)[0] };
};

describe("run behaviour", () => {
  let otto: TestOtto;
  let failed = false;
  const markerDirs: string[] = [];

  before(async () => {
    otto = await startTestOtto({ agents: 2, agentSlots: 2 });
  });
  afterEach((t) => {
    if (!t.passed) failed = true;
  });
  after(async () => {
    if (failed || process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    for (const dir of markerDirs) await rm(dir, { recursive: true, force: true });
  });

  // A fresh directory for the marker files of one test, passed to jobs as $MARK.
  async function markerDir(): Promise<string> {
    const dir = await stepsSharedDir(otto, "marks");
    markerDirs.push(dir);
    return dir;
  }

  it("runs independent jobs in parallel and dependants after their needs", async () => {
    const mark = await markerDir();
    const timed = `date +%s%N > "$MARK/$OTTO_JOB.start"; sleep 1; date +%s%N > "$MARK/$OTTO_JOB.end"`;
    const env = { MARK: mark };
    const run = await submitAndWait(
      otto.client,
      pipeline("dag")
        .job("a", { env, steps: [{ name: "timed", run: timed }] })
        .job("b", { env, steps: [{ name: "timed", run: timed }] })
        .job("c", { env, needs: ["a", "b"], steps: [{ name: "timed", run: timed }] })
        .job("d", { env, needs: ["c"], steps: [{ name: "timed", run: timed }] })
        .build(),
    );
    assertState(run, RunState.SUCCEEDED);
    assert.deepEqual(run.jobs.map((job) => job.name), ["a", "b", "c", "d"]);
    for (const job of run.jobs) assertState(job, RunState.SUCCEEDED);

    // As the coordinator saw it...
    const [a, b, c, d] = run.jobs.map(span);
    assert.ok(a.start < b.end && b.start < a.end, `jobs a and b overlap: ${JSON.stringify({ a, b })}`);
    assert.ok(c.start >= a.end && c.start >= b.end, `job c started after a and b finished: ${JSON.stringify({ a, b, c })}`);
    assert.ok(d.start >= c.end, `job d started after c finished: ${JSON.stringify({ c, d })}`);

    // ...and as the steps themselves saw it, in nanoseconds.
    const m = await readMarks(mark, ["a", "b", "c", "d"]);
    const shown = JSON.stringify(m, (_key, value) => (typeof value === "bigint" ? value.toString() : value));
    assert.ok(m.a.start < m.b.end && m.b.start < m.a.end, `steps of a and b overlap: ${shown}`);
    assert.ok(m.c.start > m.a.end && m.c.start > m.b.end, `step of c started after those of a and b ended: ${shown}`);
    assert.ok(m.d.start > m.c.end, `step of d started after that of c ended: ${shown}`);
  });

  it("a failing step fails its job, skips the rest of it and cancels dependants", async () => {
    const mark = await markerDir();
    const run = await submitAndWait(
      otto.client,
      pipeline("failing")
        .job("build", {
          env: { MARK: mark },
          steps: [
            { name: "ok", run: "echo ok" },
            { name: "fail", run: "exit 3" },
            { name: "never", run: 'touch "$MARK/never"; echo never' },
          ],
        })
        .job("test", { needs: ["build"], steps: [{ name: "unit", run: "true" }, { name: "e2e", run: "true" }] })
        .job("other", { steps: [{ name: "fine", run: "echo fine" }] })
        .build(),
    );
    assertState(run, RunState.FAILED);

    const build = jobOf(run, "build");
    assertState(build, RunState.FAILED);
    assert.deepEqual(
      build.steps.map((s) => [s.name, runStateName(s.state), s.exitCode]),
      [
        ["ok", runStateName(RunState.SUCCEEDED), 0],
        ["fail", runStateName(RunState.FAILED), 3],
        ["never", runStateName(RunState.CANCELED), undefined],
      ],
    );
    assert.equal(await exists(join(mark, "never")), false, "the step after the failing one never ran");

    const testJob = jobOf(run, "test");
    assertState(testJob, RunState.SKIPPED);
    assert.match(testJob.message, /build/);
    assert.equal(testJob.startedAt, undefined, "test never started");
    assert.equal(testJob.steps.length, 2);
    for (const step of testJob.steps) assertState(step, RunState.SKIPPED);

    assertState(jobOf(run, "other"), RunState.SUCCEEDED);
  });

  it("a step past its timeout is killed and fails its job", async () => {
    const sleeper = sleepStep(30);
    const submitted = await submit(
      otto.client,
      pipeline("timeout")
        .job("slow", { steps: [{ name: "sleep", run: sleeper.run, timeout: "2s" }] })
        .build(),
    );
    const pid = await waitFor("the sleep to start", () => sleeper.pid());
    const run = await waitForRun(otto.client, submitted.id);
    assertState(run, RunState.FAILED);
    const job = jobOf(run, "slow");
    assertState(job, RunState.FAILED);
    assert.match(job.message, /timed out/);
    const [step] = job.steps;
    assertState(step, RunState.FAILED);
    assert.equal(step.exitCode, -1, "killed by a signal");
    const elapsedMs = date(run.finishedAt).getTime() - date(step.startedAt).getTime();
    assert.ok(elapsedMs < 15_000, `run finished ${elapsedMs} ms after the step started, not after its sleep`);

    await waitFor(`sleep ${pid} to be gone`, () => !isAlive(pid), 10_000);
  });

  it("CancelRun stops a running step and cancels the jobs that have not started", async () => {
    const sleep = sleepStep(300);
    const submitted = await submit(
      otto.client,
      pipeline("cancel")
        .job("sleeper", { steps: [{ name: "sleep", run: sleep.run }] })
        .job("later", { needs: ["sleeper"], steps: [{ name: "late", run: "true" }] })
        .build(),
    );
    const pid = await waitFor("the sleep to start", () => sleep.pid());
    assert.ok(isAlive(pid), "sleep runs before the cancel");

    await otto.client.runs.cancelRun({ runId: submitted.id });
    const run = await waitForRun(otto.client, submitted.id);
    assertState(run, RunState.CANCELED);
    const sleeper = jobOf(run, "sleeper");
    assertState(sleeper, RunState.CANCELED);
    assertState(sleeper.steps[0], RunState.CANCELED);
    assert.equal(sleeper.steps[0].exitCode, -1, "killed by a signal");
    assert.match(sleeper.message, /cancel/);
    const later = jobOf(run, "later");
    assertState(later, RunState.CANCELED);
    assert.equal(later.startedAt, undefined, "the dependent job never started");
    assertState(later.steps[0], RunState.CANCELED);

    await waitFor(`sleep ${pid} to be gone`, () => !isAlive(pid), 10_000);
  });

  it("CancelRun leaves a finished run as it is", async () => {
    const done = await submitAndWait(otto.client, pipeline("done").job("one", { steps: ["true"] }).build());
    assertState(done, RunState.SUCCEEDED);
    const { run: answered } = await otto.client.runs.cancelRun({ runId: done.id });
    assertState(answered!, RunState.SUCCEEDED);
    const { run } = await otto.client.runs.getRun({ runId: done.id });
    assertState(run!, RunState.SUCCEEDED);
    assertState(jobOf(run!, "one"), RunState.SUCCEEDED);
    assert.deepEqual(run!.finishedAt, done.finishedAt, "finish time unchanged");
  });

  it("CancelRun of an unknown run is NotFound", async () => {
    await assert.rejects(
      otto.client.runs.cancelRun({ runId: "00000000-0000-4000-8000-000000000000" }),
      (err) => err instanceof ConnectError && err.code === Code.NotFound,
    );
  });
});

function span(job: RunJob): { start: Date; end: Date } {
  return { start: date(job.startedAt), end: date(job.finishedAt) };
}

function date(timestamp: Timestamp | undefined): Date {
  assert.ok(timestamp, "timestamp is set");
  return timestampDate(timestamp);
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function readMarks(mark: string, jobs: string[]): Promise<Record<string, { start: bigint; end: bigint }>> {
  const read = async (file: string) => BigInt((await readFile(join(mark, file), "utf8")).trim());
  const entries = await Promise.all(jobs.map(async (job) => [job, { start: await read(`${job}.start`), end: await read(`${job}.end`) }] as const));
  return Object.fromEntries(entries);
}
