import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import type { ClaimedTask, Claimant } from "@otto/coordinator/engine/claim-task";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { expireLease } from "@otto/coordinator/engine/expire-lease";
import { handBackTask } from "@otto/coordinator/engine/hand-back-task";
import { reportSteps } from "@otto/coordinator/engine/report-steps";
import { shouldRetry } from "@otto/coordinator/engine/retry-policy";
import { claim, liveAttemptsOf, startEngineDb, type EngineDb, type JobSpec } from "../helpers/engine-db.ts";
import {
  jobRow,
  journalLines,
  journalSince,
  lapseLease,
  reservationRows,
  RunState,
  runRow,
  scope,
  stepsOf,
  stepStates,
  taskOf,
  tokenIsLive,
} from "./engine-rows.ts";

// A failed attempt is tried again when the job's retry policy covers its
// failure: the job goes back to QUEUED with its steps, and its task waits
// for the next attempt. Exit codes narrow the failures retried; agent_lost
// says whether losing the agent (a lapsed lease) counts; max bounds the
// retries; attempts handed back by stopping agents do not count.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { QUEUED, RUNNING, FAILED } = RunState;

type Retry = JobSpec["retry"];

async function started(retry: Retry, steps = ["make", "make check"]) {
  const s = scope(db);
  const runId = await s.submit({ build: { steps, retry, locks: [s.lock("L")] } });
  let slot = 0;
  // Each claim from a slot of its own, as an agent's slots do.
  const next = async (claimant: Claimant = s.agent("a", { slot: slot++ })) => {
    const task = await claim(db, claimant);
    assert.ok(task, "the job can be claimed");
    return task;
  };
  return { runId, s, next, first: await next() };
}

// The attempt fails at its first step with `exitCode`.
function failAt(task: ClaimedTask, exitCode: number) {
  return db.tx((client) =>
    completeTask(client, db.boss, { taskId: task.id, attempt: task.attempt }, {
      state: FAILED,
      message: `step make failed with exit code ${exitCode}`,
      steps: [
        { stepIndex: 0, state: RUNNING },
        { stepIndex: 0, state: FAILED, exitCode },
      ],
    }),
  );
}

async function loseAgent(task: ClaimedTask) {
  await lapseLease(db, task.id);
  const ended = await db.tx((client) => expireLease(client, db.boss, task.id, task.run_id));
  assert.ok(ended, "the lease had lapsed");
}

async function jobState(runId: string): Promise<RunState> {
  return (await jobRow(db, runId, "build")).state;
}

describe("the retry policy", () => {
  const policy = (max: number, exitCodes: number[] = [], agentLost: boolean | null = null) => ({ max, exitCodes, agentLost });
  test("max alone: any failure, the agent's loss too, up to max retries", () => {
    assert.equal(shouldRetry(policy(2), 1, { agentLost: false, exitCode: 1 }), true);
    assert.equal(shouldRetry(policy(2), 2, { agentLost: true }), true);
    assert.equal(shouldRetry(policy(2), 3, { agentLost: false, exitCode: 1 }), false);
    assert.equal(shouldRetry(policy(0), 1, { agentLost: false, exitCode: 1 }), false);
  });
  test("exit codes narrow it to those codes; losing the agent counts only if agent_lost says so", () => {
    assert.equal(shouldRetry(policy(1, [3, 4]), 1, { agentLost: false, exitCode: 4 }), true);
    assert.equal(shouldRetry(policy(1, [3, 4]), 1, { agentLost: false, exitCode: 5 }), false);
    assert.equal(shouldRetry(policy(1, [3, 4]), 1, { agentLost: false }), false);
    assert.equal(shouldRetry(policy(1, [3]), 1, { agentLost: true }), false);
    assert.equal(shouldRetry(policy(1, [3], true), 1, { agentLost: true }), true);
    assert.equal(shouldRetry(policy(1, [], true), 1, { agentLost: false, exitCode: 1 }), false, "agent_lost alone retries only the agent's loss");
    assert.equal(shouldRetry(policy(1, [], false), 1, { agentLost: true }), false);
    assert.equal(shouldRetry(policy(1, [], false), 1, { agentLost: false, exitCode: 1 }), true);
  });
});

test("a retried attempt puts the job and its steps back in the queue, releases what it held and ends its token", async () => {
  const { runId, first } = await started({ max: 2 });
  const agentId = (await taskOf(db, runId, "build")).agent_id;
  const before = await journalLines(db, runId);
  await failAt(first, 1);

  const why = "attempt 1 failed (step make failed with exit code 1); retrying as attempt 2 (retry 1 of 2)";
  const job = await jobRow(db, runId, "build");
  assert.deepEqual([job.state, job.message, job.agent_id, job.started_at, job.finished_at], [QUEUED, why, "", null, null]);
  assert.deepEqual(await stepStates(db, runId, "build"), ["QUEUED", "QUEUED"]);
  assert.deepEqual(
    (await stepsOf(db, runId, "build")).map((s) => [s.started_at, s.finished_at]),
    [
      [null, null],
      [null, null],
    ],
  );
  const task = await taskOf(db, runId, "build");
  assert.deepEqual([task.status, task.attempt, task.agent_id, task.started, task.lease_expires_at], ["pending", 1, "", false, null]);
  assert.deepEqual(await reservationRows(db, { runId }), []);
  assert.deepEqual(await liveAttemptsOf(db, runId), []);
  assert.equal(await tokenIsLive(db, runId, "build", 1, agentId), false);
  assert.equal((await runRow(db, runId)).state, RUNNING, "the run goes on");
  assert.deepEqual(await journalSince(db, runId, before), [
    "build/make RUNNING",
    "build/make FAILED exit 1",
    `build QUEUED: ${why}`,
    "build/make QUEUED",
  ]);
});

test("max bounds the retries: the attempt after the last retry fails the job and the run", async () => {
  const { runId, first, next } = await started({ max: 2 });
  await failAt(first, 1);
  const second = await next();
  assert.equal(second.attempt, 2);
  assert.equal((await jobRow(db, runId, "build")).message, `attempt 2 on agent ${(await taskOf(db, runId, "build")).agent_id}; holds lock ${(await reservationRows(db, { runId }))[1].name}`);
  await failAt(second, 1);
  assert.match((await jobRow(db, runId, "build")).message, /retrying as attempt 3 \(retry 2 of 2\)/);
  const third = await next();
  assert.equal(third.attempt, 3);
  await failAt(third, 1);
  assert.equal(await jobState(runId), FAILED);
  assert.equal((await jobRow(db, runId, "build")).message, "step make failed with exit code 1");
  assert.equal((await taskOf(db, runId, "build")).status, "done");
  assert.equal((await runRow(db, runId)).state, FAILED);
});

test("a job without retries is not retried", async () => {
  const { runId, first } = await started(undefined);
  await failAt(first, 1);
  assert.equal(await jobState(runId), FAILED);
});

test("with exit codes, only a failure with one of them is retried", async () => {
  const retried = await started({ max: 1, exitCodes: [3, 4] });
  await failAt(retried.first, 4);
  assert.equal(await jobState(retried.runId), QUEUED);

  const notRetried = await started({ max: 1, exitCodes: [3, 4] });
  await failAt(notRetried.first, 5);
  assert.equal(await jobState(notRetried.runId), FAILED);

  // A failure of no step (no exit code) is not one of them.
  const noStep = await started({ max: 1, exitCodes: [3] });
  await db.tx((client) =>
    completeTask(client, db.boss, { taskId: noStep.first.id, attempt: 1 }, { state: FAILED, message: "secrets missing", steps: [] }),
  );
  assert.equal(await jobState(noStep.runId), FAILED);
});

test("the exit code that counts is the failed step's, also when it was reported before the completion", async () => {
  const { runId, first } = await started({ max: 1, exitCodes: [7] }, ["make", "make check"]);
  await db.tx((client) =>
    reportSteps(client, { taskId: first.id, attempt: 1 }, [
      { stepIndex: 0, state: RUNNING },
      { stepIndex: 0, state: RunState.SUCCEEDED, exitCode: 0 },
      { stepIndex: 1, state: RUNNING },
      { stepIndex: 1, state: FAILED, exitCode: 7 },
    ]),
  );
  await db.tx((client) => completeTask(client, db.boss, { taskId: first.id, attempt: 1 }, { state: FAILED, message: "failed", steps: [] }));
  assert.equal(await jobState(runId), QUEUED);
});

test("losing the agent is retried by max alone, or with agent_lost, and not with exit codes only or agent_lost false", async () => {
  const cases: [Retry, RunState][] = [
    [{ max: 1 }, QUEUED],
    [{ max: 1, exitCodes: [3], agentLost: true }, QUEUED],
    [{ max: 1, agentLost: true }, QUEUED],
    [{ max: 1, exitCodes: [3] }, FAILED],
    [{ max: 1, agentLost: false }, FAILED],
    [{ max: 0, agentLost: true }, FAILED],
  ];
  for (const [retry, expected] of cases) {
    const { runId, first } = await started(retry);
    await loseAgent(first);
    assert.equal(await jobState(runId), expected, JSON.stringify(retry));
  }
});

test("a retry after the agent was lost journals the lease's end and what it released before the requeue", async () => {
  const { runId, first, s } = await started({ max: 1 });
  const agentId = (await taskOf(db, runId, "build")).agent_id;
  const before = await journalLines(db, runId);
  await loseAgent(first);
  const lines = await journalSince(db, runId, before);
  assert.equal(lines[0], `build RUNNING: lease of attempt 1 expired; released slot on ${agentId}, lock ${s.lock("L")}`);
  assert.match(lines[1], new RegExp(`^build QUEUED: attempt 1 failed \\(agent ${agentId} lost: no heartbeat for attempt 1 within its lease\\); retrying as attempt 2 \\(retry 1 of 1\\)$`));
  assert.deepEqual(await reservationRows(db, { runId }), []);
  assert.equal((await taskOf(db, runId, "build")).status, "pending");
});

test("attempts handed back do not count as retries", async () => {
  const { runId, first, next, s } = await started({ max: 1 });
  const agentId = (await taskOf(db, runId, "build")).agent_id;
  await db.tx((client) => handBackTask(client, db.boss, { taskId: first.id, attempt: 1, agentId }));
  const second = await next(s.agent("b"));
  assert.equal(second.attempt, 2);
  await failAt(second, 1);
  // Attempt 2 is the first that failed: retry 1 of 1.
  assert.equal(await jobState(runId), QUEUED);
  assert.match((await jobRow(db, runId, "build")).message, /attempt 2 failed .*; retrying as attempt 3 \(retry 1 of 1\)/);
  const third = await next(s.agent("c"));
  assert.equal(third.attempt, 3);
  await failAt(third, 1);
  assert.equal(await jobState(runId), FAILED);
  assert.equal((await taskOf(db, runId, "build")).handbacks, 1);
});

test("a failed attempt of a canceled run is not retried", async () => {
  const { runId, first } = await started({ max: 3 });
  await db.tx((client) => cancelRun(client, runId));
  await failAt(first, 1);
  assert.equal(await jobState(runId), FAILED);
  assert.equal((await runRow(db, runId)).state, RunState.CANCELED);
  assert.equal((await taskOf(db, runId, "build")).status, "done");
});
