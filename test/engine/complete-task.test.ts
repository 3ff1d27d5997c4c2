import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import { tasksChannel } from "@otto/coordinator/engine/apply-changes";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { reportSteps } from "@otto/coordinator/engine/report-steps";
import type { StepReport } from "@otto/coordinator/engine/step-changes";
import { claim, liveAttemptsOf, startEngineDb, type EngineDb, type JobSpec } from "../helpers/engine-db.ts";
import {
  jobRow,
  jobStates,
  journalLines,
  journalSince,
  listen,
  refused,
  reservationRows,
  RunState,
  runRow,
  scope,
  snapshot,
  stepsOf,
  stepStates,
  taskOf,
  tasksOf,
  tokenIsLive,
} from "./engine-rows.ts";

// completeTask: an agent ends its attempt in a final state with its last
// step reports; the job ends, what the attempt held is released, its task
// token writes no more, and the run advances in the same transaction.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED } = RunState;

async function started(jobs: Record<string, JobSpec>, job: string, s = scope(db)) {
  const runId = await s.submit(jobs);
  const a = s.agent("a");
  const task = await claim(db, a);
  assert.equal(task?.job, job);
  return { runId, task: task!, agent: a, s };
}

function complete(taskId: string, attempt: number, state: RunState, message: string, steps: StepReport[] = [], caller?: string) {
  return db.tx((client) => completeTask(client, db.boss, { taskId, attempt, caller }, { state, message, steps }));
}

test("a successful attempt ends its job with its last step reports, releases what it held, ends its token, and readies the jobs that need it", async () => {
  const s = scope(db);
  const { runId, task, agent } = await started({ build: { steps: ["make", "make check"], locks: [s.lock("L")] }, test: { needs: ["build"] } }, "build", s);
  assert.deepEqual((await reservationRows(db, { runId })).map((r) => r.kind), ["slot", "lock"]);
  await db.tx((client) => reportSteps(client, { taskId: task.id, attempt: 1 }, [{ stepIndex: 0, state: RUNNING }]));
  const before = await journalLines(db, runId);

  await complete(
    task.id,
    1,
    SUCCEEDED,
    "",
    [
      { stepIndex: 0, state: SUCCEEDED, exitCode: 0 },
      { stepIndex: 1, state: RUNNING },
      { stepIndex: 1, state: SUCCEEDED, exitCode: 0 },
    ],
    agent.id,
  );

  assert.deepEqual(await stepStates(db, runId, "build"), ["SUCCEEDED exit 0", "SUCCEEDED exit 0"]);
  const job = await jobRow(db, runId, "build");
  assert.deepEqual([job.state, job.agent_id], [SUCCEEDED, agent.id]);
  assert.ok(job.finished_at);
  assert.equal((await taskOf(db, runId, "build")).status, "done");
  assert.deepEqual(await reservationRows(db, { runId }), []);
  assert.deepEqual(await liveAttemptsOf(db, runId), []);
  assert.equal(await tokenIsLive(db, runId, "build", 1, agent.id), false);
  // The advance happened in the same transaction.
  assert.deepEqual(await tasksOf(db, runId), { build: "done", test: "pending" });
  assert.equal((await runRow(db, runId)).state, RUNNING);
  assert.deepEqual(await journalSince(db, runId, before), [
    "build/make SUCCEEDED exit 0",
    "build/make check RUNNING",
    "build/make check SUCCEEDED exit 0",
    "build SUCCEEDED",
  ]);

  // The last job's end ends the run.
  const next = await claim(db, s.agent("b"));
  assert.equal(next?.job, "test");
  const beforeLast = await journalLines(db, runId);
  await complete(next!.id, 1, SUCCEEDED, "", [{ stepIndex: 0, state: SUCCEEDED, exitCode: 0 }]);
  assert.deepEqual(await journalSince(db, runId, beforeLast), ["test/true SUCCEEDED exit 0", "test SUCCEEDED", "run SUCCEEDED: all jobs succeeded"]);
  const run = await runRow(db, runId);
  assert.equal(run.state, SUCCEEDED);
  assert.ok(run.finished_at);
});

test("a failed attempt without retries fails its job, skips the jobs that need it and fails the run, in one transaction", async () => {
  const { runId, task } = await started({ build: { steps: ["make", "make check"] }, test: { needs: ["build"] } }, "build");
  const before = await journalLines(db, runId);
  await complete(task.id, 1, FAILED, "step make failed", [
    { stepIndex: 0, state: RUNNING },
    { stepIndex: 0, state: FAILED, exitCode: 2 },
  ]);
  assert.deepEqual(await jobStates(db, runId), { build: "FAILED", test: "SKIPPED" });
  assert.equal((await jobRow(db, runId, "build")).message, "step make failed");
  assert.deepEqual(await stepStates(db, runId, "build"), ["FAILED exit 2", "CANCELED"]);
  assert.equal((await runRow(db, runId)).state, FAILED);
  assert.deepEqual(await journalSince(db, runId, before), [
    "build/make RUNNING",
    "build/make FAILED exit 2",
    "build FAILED: step make failed",
    "build/make check CANCELED",
    'test SKIPPED: skipped: needs "build", which failed',
    "test/true SKIPPED",
    "run FAILED: failed jobs: build",
  ]);
});

test("steps the attempt left unfinished are closed: a running one takes the job's state (FAILED for a success), one never run is CANCELED", async () => {
  const steps = ["one", "two", "three"];
  for (const [state, running] of [
    [SUCCEEDED, "FAILED"],
    [FAILED, "FAILED"],
    [CANCELED, "CANCELED"],
  ] as const) {
    const { runId, task } = await started({ build: { steps } }, "build");
    await complete(task.id, 1, state, "", [
      { stepIndex: 0, state: SUCCEEDED, exitCode: 0 },
      { stepIndex: 1, state: RUNNING },
    ]);
    assert.deepEqual(await stepStates(db, runId, "build"), ["SUCCEEDED exit 0", running, "CANCELED"], `job ${state}`);
    assert.equal((await jobRow(db, runId, "build")).state, state);
    const [, two, three] = await stepsOf(db, runId, "build");
    assert.ok(two.finished_at && three.finished_at);
    assert.equal(three.started_at, null, "a step that never ran has no start");
  }
});

test("completing in a state that is not final is refused (invalid_argument) and changes nothing", async () => {
  const { runId, task } = await started({ build: {} }, "build");
  const before = await snapshot(db, runId);
  for (const state of [RUNNING, QUEUED, RunState.UNSPECIFIED]) {
    await refused(complete(task.id, 1, state, "", [{ stepIndex: 0, state: SUCCEEDED, exitCode: 0 }]), Code.InvalidArgument, /final state/);
  }
  assert.deepEqual(await snapshot(db, runId), before);
});

test("a completion sent again finds its attempt ended (failed precondition) and changes nothing", async () => {
  const { runId, task, agent } = await started({ build: {} }, "build");
  const steps = [{ stepIndex: 0, state: SUCCEEDED, exitCode: 0 }];
  await complete(task.id, 1, SUCCEEDED, "", steps, agent.id);
  const after = await snapshot(db, runId);
  await refused(complete(task.id, 1, SUCCEEDED, "", steps, agent.id), Code.FailedPrecondition, /no longer current \(task is done, attempt 1\)/);
  await refused(complete(task.id, 1, FAILED, "changed my mind", [], agent.id), Code.FailedPrecondition);
  assert.deepEqual(await snapshot(db, runId), after);
});

test("an unknown task, another agent's task, a stale attempt and a step the job lacks are refused, changing nothing", async () => {
  const { runId, task, agent, s } = await started({ build: { steps: ["make"] } }, "build");
  const before = await snapshot(db, runId);
  await refused(complete("00000000-0000-4000-8000-000000000000", 1, SUCCEEDED, ""), Code.NotFound);
  await refused(complete(task.id, 1, SUCCEEDED, "", [], s.agent("intruder").id), Code.PermissionDenied);
  await refused(complete(task.id, 2, SUCCEEDED, "", [], agent.id), Code.FailedPrecondition);
  await refused(complete(task.id, 1, SUCCEEDED, "", [{ stepIndex: 1, state: SUCCEEDED, exitCode: 0 }], agent.id), Code.InvalidArgument, /no step 1/);
  assert.deepEqual(await snapshot(db, runId), before);
  assert.equal(await tokenIsLive(db, runId, "build", 1, agent.id), true);
});

test("a long message is cut to 1000 characters", async () => {
  const { runId, task } = await started({ build: {} }, "build");
  await complete(task.id, 1, FAILED, "x".repeat(5_000));
  assert.equal((await jobRow(db, runId, "build")).message, "x".repeat(1000));
});

test("the last job of a canceled run ends the run CANCELED, whatever its own state", async () => {
  const { runId, task } = await started({ build: {}, later: { needs: ["build"] } }, "build");
  await db.tx((client) => cancelRun(client, runId));
  assert.equal((await runRow(db, runId)).state, RUNNING, "a job still runs");
  await complete(task.id, 1, SUCCEEDED, "", [{ stepIndex: 0, state: SUCCEEDED, exitCode: 0 }]);
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", later: "CANCELED" });
  assert.equal((await runRow(db, runId)).state, CANCELED);
  assert.equal((await journalLines(db, runId)).at(-1), "run CANCELED: run canceled");
});

test("what a completion releases wakes the agents when a task waits for it", async () => {
  const s = scope(db);
  const holder = await s.submit({ migrate: { locks: [s.lock("db")] } });
  const holding = await claim(db, s.agent("a"));
  const waiting = await s.submit({ deploy: { locks: [s.lock("db")] } });
  assert.equal(await claim(db, s.agent("b")), undefined);
  const listener = await listen(db, tasksChannel);
  try {
    await complete(holding!.id, 1, SUCCEEDED, "");
    await listener.atLeast(1);
  } finally {
    await listener.stop();
  }
  assert.equal((await runRow(db, holder)).state, SUCCEEDED);
  assert.equal((await claim(db, s.agent("b")))?.run_id, waiting);
});

test("a completion that frees only its slot wakes nobody: the agent's slot asks again itself", async () => {
  const s = scope(db);
  await s.submit({ build: {} });
  const held = await claim(db, s.agent("a"));
  // A task waits, for labels no agent has.
  await s.submit({ elsewhere: { runsOn: [`${s.label}-nobody`] } });
  const listener = await listen(db, tasksChannel);
  try {
    await complete(held!.id, 1, SUCCEEDED, "");
    // Announced after the completion: had the completion woken agents, its
    // notice ("") would come first.
    await s.submit({ next: {} });
    await listener.atLeast(1);
    assert.deepEqual(JSON.parse(listener.received[0]), [s.label]);
  } finally {
    await listener.stop();
  }
});
