import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { expireLease } from "@otto/coordinator/engine/expire-lease";
import { heartbeatTask } from "@otto/coordinator/engine/heartbeat-task";
import { claim, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { lapseLease, refused, reservationRows, RunState, scope, snapshot, taskOf } from "./engine-rows.ts";

// heartbeatTask: the agent of an attempt keeps its lease, and everything
// reserved for it, alive; the answer says whether the run was canceled. No
// state changes, and no lock on the run.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

async function started(jobs = { build: {} as { locks?: string[]; retry?: { max: number } } }) {
  const s = scope(db);
  const runId = await s.submit(jobs);
  const a = s.agent("a");
  const task = await claim(db, a, 60_000);
  assert.ok(task);
  return { runId, task, agent: a, s };
}

function heartbeat(taskId: string, attempt: number, agentId: string, leaseMs = 60_000) {
  return heartbeatTask(db.pool, { taskId, attempt, agentId }, leaseMs);
}

// Seconds left of the task's lease and of each of its reservations'.
async function leasesLeft(taskId: string): Promise<number[]> {
  const { rows } = await db.pool.query(
    `SELECT extract(epoch FROM lease_expires_at - now())::float8 AS s FROM coordinator.tasks WHERE id = $1
     UNION ALL SELECT extract(epoch FROM lease_expires_at - now())::float8 FROM coordinator.reservations WHERE task_id = $1`,
    [taskId],
  );
  return rows.map((r) => r.s);
}

test("a heartbeat renews the lease of the attempt and of everything reserved for it, and changes nothing else", async () => {
  const s = scope(db);
  const { runId, task, agent } = await started({ build: { locks: [s.lock("L")] } });
  await lapseLease(db, task.id);
  assert.ok((await leasesLeft(task.id)).every((left) => left < 0));
  const before = await snapshot(db, runId);
  const beforeTasks = before.tasks.map(({ lease_expires_at, ...rest }) => rest);

  assert.deepEqual(await heartbeat(task.id, 1, agent.id, 120_000), { cancel: false });

  const left = await leasesLeft(task.id);
  assert.equal(left.length, 3, "the task, its slot and its lock");
  assert.ok(left.every((l) => l > 100 && l <= 120), `leases renewed for 120 s: ${left.join(", ")}`);
  const after = await snapshot(db, runId);
  assert.deepEqual(after.tasks.map(({ lease_expires_at, ...rest }) => rest), beforeTasks);
  for (const key of ["run", "jobs", "steps", "live", "journal"] as const) assert.deepEqual(after[key], before[key], key);
  assert.deepEqual((await reservationRows(db, { runId })).map((r) => r.kind), ["slot", "lock"]);

  // Renewed, the lease is not taken for lapsed.
  assert.equal(await db.tx((client) => expireLease(client, db.boss, task.id, runId)), undefined);
});

test("the answer says when the run was canceled", async () => {
  const { runId, task, agent } = await started({ build: {} });
  assert.deepEqual(await heartbeat(task.id, 1, agent.id), { cancel: false });
  await db.tx((client) => cancelRun(client, runId));
  assert.deepEqual(await heartbeat(task.id, 1, agent.id), { cancel: true });
  assert.equal((await taskOf(db, runId, "build")).status, "assigned");
});

test("a heartbeat does not wait for a transaction that holds the run", async () => {
  const { runId, task, agent } = await started({ build: {} });
  const holder = await db.pool.connect();
  try {
    await holder.query("BEGIN");
    await holder.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
    const answered = await Promise.race([heartbeat(task.id, 1, agent.id), delay(5_000).then(() => "still waiting after 5 s")]);
    assert.deepEqual(answered, { cancel: false });
  } finally {
    await holder.query("ROLLBACK");
    holder.release();
  }
});

test("an unknown task is not found, another agent's attempt is refused, and an attempt that is not current is a failed precondition", async () => {
  const { runId, task, agent, s } = await started({ build: {} });
  const before = await snapshot(db, runId);
  await refused(heartbeat("00000000-0000-4000-8000-000000000000", 1, agent.id), Code.NotFound);
  await refused(heartbeat(task.id, 1, s.agent("other").id), Code.PermissionDenied, /not assigned to agent/);
  await refused(heartbeat(task.id, 2, agent.id), Code.FailedPrecondition, /attempt 2 .* is not current/);
  // A stale attempt is for its caller to sort out, whoever it is.
  await refused(heartbeat(task.id, 0, s.agent("other").id), Code.FailedPrecondition);
  assert.deepEqual(await snapshot(db, runId), before);
});

test("the attempt of a completed task is no longer current", async () => {
  const { runId, task, agent } = await started({ build: {} });
  await db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: 1 }, { state: RunState.SUCCEEDED, message: "", steps: [] }));
  const after = await snapshot(db, runId);
  await refused(heartbeat(task.id, 1, agent.id), Code.FailedPrecondition);
  assert.deepEqual(await snapshot(db, runId), after);
});

test("the agent of an attempt taken away for a lapsed lease is told so (failed precondition), before and after the next claim", async () => {
  const { runId, task, agent, s } = await started({ build: { retry: { max: 1 } } });
  await lapseLease(db, task.id);
  assert.ok(await db.tx((client) => expireLease(client, db.boss, task.id, runId)));
  assert.equal((await taskOf(db, runId, "build")).status, "pending");
  // The job waits for its next attempt: the old one is not current.
  await refused(heartbeat(task.id, 1, agent.id), Code.FailedPrecondition, /not current/);

  const next = await claim(db, s.agent("b"));
  assert.equal(next?.attempt, 2);
  await refused(heartbeat(task.id, 1, agent.id), Code.FailedPrecondition, /not current/);
  assert.deepEqual(await heartbeat(task.id, 2, s.agent("b").id), { cancel: false });
});
