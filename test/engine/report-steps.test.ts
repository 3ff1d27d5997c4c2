import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { handBackTask } from "@otto/coordinator/engine/hand-back-task";
import { reportSteps } from "@otto/coordinator/engine/report-steps";
import type { StepReport } from "@otto/coordinator/engine/step-changes";
import { claim, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobRow, journalLines, journalSince, refused, RunState, scope, snapshot, stepsOf, stepStates, taskOf } from "./engine-rows.ts";

// reportSteps: an agent's step changes for its current attempt, applied in
// order; a batch sent again changes nothing; the answer says whether the
// run was canceled.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { RUNNING, SUCCEEDED, FAILED } = RunState;

// A run of one job with these steps, claimed by the test's agent.
async function claimed(steps = ["make", "make check", "make install"]) {
  const s = scope(db);
  const runId = await s.submit({ build: { steps } });
  const a = s.agent("a");
  const task = await claim(db, a);
  assert.ok(task);
  return { runId, task, agent: a, s };
}

function report(taskId: string, attempt: number, reports: StepReport[], caller?: string) {
  return db.tx((client) => reportSteps(client, { taskId, attempt, caller }, reports));
}

async function dbNow(): Promise<Date> {
  const { rows } = await db.pool.query("SELECT now() AS now");
  return rows[0].now;
}

test("steps move forward as reported, each change journaled in order, and the job keeps running", async () => {
  const { runId, task, agent } = await claimed();
  const before = await journalLines(db, runId);
  assert.deepEqual(await report(task.id, 1, [{ stepIndex: 0, state: RUNNING }], agent.id), { cancel: false });
  assert.deepEqual(await stepStates(db, runId, "build"), ["RUNNING", "QUEUED", "QUEUED"]);
  assert.equal((await taskOf(db, runId, "build")).started, true, "a step ran: the task is started");

  await report(task.id, 1, [
    { stepIndex: 0, state: SUCCEEDED, exitCode: 0 },
    { stepIndex: 1, state: RUNNING },
    { stepIndex: 1, state: FAILED, exitCode: 2 },
  ]);
  assert.deepEqual(await stepStates(db, runId, "build"), ["SUCCEEDED exit 0", "FAILED exit 2", "QUEUED"]);
  assert.deepEqual(await journalSince(db, runId, before), [
    "build/make RUNNING",
    "build/make SUCCEEDED exit 0",
    "build/make check RUNNING",
    "build/make check FAILED exit 2",
  ]);
  // Steps are the job's business: the job and the task are as they were.
  assert.equal((await jobRow(db, runId, "build")).state, RUNNING);
  assert.equal((await taskOf(db, runId, "build")).status, "assigned");

  const steps = await stepsOf(db, runId, "build");
  for (const step of steps.slice(0, 2)) {
    assert.ok(step.started_at && step.finished_at && step.started_at <= step.finished_at, `${step.name} has started and finished`);
  }
  assert.deepEqual([steps[2].started_at, steps[2].finished_at], [null, null]);
});

// As if the attempt had been claimed `ms` ago: the agent's times count
// from its claim on.
async function claimedAgo(runId: string, ms: number): Promise<Date> {
  const { rows } = await db.pool.query(
    "UPDATE coordinator.jobs SET started_at = now() - make_interval(secs => $2::float8 / 1000) WHERE run_id = $1 AND name = 'build' RETURNING started_at",
    [runId, ms],
  );
  return rows[0].started_at;
}

test("the agent's times are stored as the steps' start and end, a RUNNING and a final report of one batch keeping their own", async () => {
  const { runId, task } = await claimed();
  await claimedAgo(runId, 600_000);
  const now = (await dbNow()).getTime();
  const started = now - 60_000;
  const finished = now - 42_000;
  const onlyFinal = now - 30_000;
  await report(task.id, 1, [
    { stepIndex: 0, state: RUNNING, atMs: started },
    { stepIndex: 0, state: SUCCEEDED, exitCode: 0, atMs: finished },
    // A step reported final without a RUNNING report started and ended then.
    { stepIndex: 1, state: FAILED, exitCode: 1, atMs: onlyFinal },
  ]);
  const steps = await stepsOf(db, runId, "build");
  assert.deepEqual(
    steps.slice(0, 2).map((s) => [s.started_at?.getTime(), s.finished_at?.getTime()]),
    [
      [started, finished],
      [onlyFinal, onlyFinal],
    ],
  );

  // A RUNNING report in one batch and the final one in the next.
  const laterStart = now - 20_000;
  const laterEnd = now - 10_000;
  await report(task.id, 1, [{ stepIndex: 2, state: RUNNING, atMs: laterStart }]);
  await report(task.id, 1, [{ stepIndex: 2, state: SUCCEEDED, exitCode: 0, atMs: laterEnd }]);
  const last = (await stepsOf(db, runId, "build"))[2];
  assert.deepEqual([last.started_at?.getTime(), last.finished_at?.getTime()], [laterStart, laterEnd]);
});

test("an agent's clock cannot put a step before its attempt's claim or in the future", async () => {
  const { runId, task } = await claimed(["make", "make check"]);
  const claimedAt = await claimedAgo(runId, 60_000);
  const now = (await dbNow()).getTime();
  await report(task.id, 1, [
    { stepIndex: 0, state: RUNNING, atMs: claimedAt.getTime() - 3_600_000 },
    { stepIndex: 0, state: SUCCEEDED, exitCode: 0, atMs: now + 3_600_000 },
    { stepIndex: 1, state: RUNNING, atMs: Number.MAX_VALUE },
  ]);
  const after = (await dbNow()).getTime();
  const [first, second] = await stepsOf(db, runId, "build");
  assert.equal(first.started_at?.getTime(), claimedAt.getTime(), "a start before the claim is taken as the claim");
  const end = first.finished_at!.getTime();
  assert.ok(end >= now && end <= after, `an end in the future is taken as now: ${first.finished_at?.toISOString()}`);
  const start = second.started_at!.getTime();
  assert.ok(start >= now && start <= after, `no time an agent sends fails the report: ${second.started_at?.toISOString()}`);
});

test("a batch sent again, or a report a step is already past, changes nothing", async () => {
  const { runId, task, agent } = await claimed();
  const batch: StepReport[] = [
    { stepIndex: 0, state: RUNNING, atMs: Date.now() - 5_000 },
    { stepIndex: 0, state: SUCCEEDED, exitCode: 0, atMs: Date.now() - 4_000 },
    { stepIndex: 1, state: RUNNING, atMs: Date.now() - 3_000 },
  ];
  await report(task.id, 1, batch, agent.id);
  const first = await snapshot(db, runId);
  await report(task.id, 1, batch, agent.id);
  await report(task.id, 1, [
    { stepIndex: 0, state: RUNNING },
    { stepIndex: 0, state: FAILED, exitCode: 9 },
    { stepIndex: 1, state: RUNNING, atMs: Date.now() },
  ]);
  assert.deepEqual(await snapshot(db, runId), first);
});

test("no reports: nothing changes, and the answer still says whether the run was canceled", async () => {
  const { runId, task } = await claimed();
  const before = await snapshot(db, runId);
  assert.deepEqual(await report(task.id, 1, []), { cancel: false });
  assert.deepEqual(await snapshot(db, runId), before);
  await db.tx((client) => cancelRun(client, runId));
  assert.deepEqual(await report(task.id, 1, []), { cancel: true });
  assert.deepEqual(await report(task.id, 1, [{ stepIndex: 0, state: RUNNING }]), { cancel: true });
  assert.deepEqual(await stepStates(db, runId, "build"), ["RUNNING", "QUEUED", "QUEUED"], "steps of a canceled run are still reported");
});

test("a step index the job does not have is refused (invalid_argument), and nothing of its batch is applied", async () => {
  const { runId, task } = await claimed(["make", "make check"]);
  const before = await snapshot(db, runId);
  await refused(
    report(task.id, 1, [
      { stepIndex: 0, state: RUNNING },
      { stepIndex: 2, state: RUNNING },
    ]),
    Code.InvalidArgument,
    /job build has no step 2/,
  );
  await refused(report(task.id, 1, [{ stepIndex: -1, state: RUNNING }]), Code.InvalidArgument);
  assert.deepEqual(await snapshot(db, runId), before);
});

test("an unknown task is not found; another agent's task is refused; an attempt that is not current is a failed precondition", async () => {
  const { runId, task, agent, s } = await claimed();
  const before = await snapshot(db, runId);
  await refused(report("00000000-0000-4000-8000-000000000000", 1, [{ stepIndex: 0, state: RUNNING }]), Code.NotFound);
  await refused(report(task.id, 1, [{ stepIndex: 0, state: RUNNING }], s.agent("other").id), Code.PermissionDenied, /not assigned to agent/);
  await refused(report(task.id, 2, [{ stepIndex: 0, state: RUNNING }], agent.id), Code.FailedPrecondition, /attempt 2 .* is no longer current/);
  await refused(report(task.id, 0, [{ stepIndex: 0, state: RUNNING }]), Code.FailedPrecondition);
  assert.deepEqual(await snapshot(db, runId), before);
});

test("the agent of an attempt that was handed back and waits for its next one is told its attempt ended (failed precondition)", async () => {
  const { runId, task, agent } = await claimed();
  await db.tx((client) => handBackTask(client, db.boss, { taskId: task.id, attempt: 1, agentId: agent.id }));
  assert.equal((await taskOf(db, runId, "build")).status, "pending");
  const before = await snapshot(db, runId);
  // Its own attempt, no longer current: not another agent's task.
  await refused(report(task.id, 1, [{ stepIndex: 0, state: RUNNING }], agent.id), Code.FailedPrecondition, /no longer current/);
  await refused(report(task.id, 1, [{ stepIndex: 0, state: RUNNING }]), Code.FailedPrecondition, /no longer current/);
  assert.deepEqual(await snapshot(db, runId), before);
});
