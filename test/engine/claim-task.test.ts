import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { ResourcesSchema } from "@otto/gen/v1/pipeline_pb";
import { claimTask } from "@otto/coordinator/engine/claim-task";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { reportSteps } from "@otto/coordinator/engine/report-steps";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { claim, liveAttemptsOf, pipelineOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobRow, journalLines, journalSince, reservationRows, RunState, runRow, scope, taskOf, tasksOf, tokenIsLive } from "./engine-rows.ts";

// claimTask hands an agent the oldest pending task it can take: labels it
// has, a free slot, and every lock the job names, reserved together. A
// claim whose answer was lost is given again to the same slot of the same
// agent process.
// Every test works in a scope of its own (engine-rows.ts).

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

async function leaseSecondsLeft(taskId: string): Promise<number> {
  const { rows } = await db.pool.query("SELECT extract(epoch FROM lease_expires_at - now())::float8 AS s FROM coordinator.tasks WHERE id = $1", [taskId]);
  return rows[0].s;
}

test("a claim assigns the task, starts its job and its run, reserves a slot, and makes the attempt live", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: { steps: ["make", "make check"] } });
  const a = s.agent("a", { slot: 2, incarnation: "inc-1" });
  const before = await journalLines(db, runId);
  const claimed = await claim(db, a, 60_000);

  assert.ok(claimed);
  const task = await taskOf(db, runId, "build");
  assert.deepEqual(
    { id: claimed.id, run_id: claimed.run_id, job: claimed.job, attempt: claimed.attempt, reserved: claimed.reserved },
    { id: task.id, run_id: runId, job: "build", attempt: 1, reserved: `slot on ${a.id}` },
  );
  assert.ok(claimed.waited !== undefined && claimed.waited >= 0);
  // The job as its pipeline gives it, and the run's trace context, for the agent.
  const spec = claimed.spec as { name: string; steps: { name: string; run: string }[]; runsOn: string[] };
  assert.deepEqual([spec.name, spec.steps.map((st) => st.run), spec.runsOn], ["build", ["make", "make check"], [s.label]]);
  const { rows: traced } = await db.pool.query("SELECT traceparent FROM coordinator.runs WHERE id = $1", [runId]);
  assert.equal(claimed.traceparent, traced[0].traceparent);
  assert.deepEqual(
    [task.status, task.attempt, task.agent_id, task.agent_slot, task.agent_incarnation, task.started],
    ["assigned", 1, a.id, 2, "inc-1", false],
  );
  const left = await leaseSecondsLeft(task.id);
  assert.ok(left > 50 && left <= 60, `lease of 60 s, ${left} s left`);

  const run = await runRow(db, runId);
  assert.equal(run.state, RunState.RUNNING);
  assert.ok(run.started_at);
  const job = await jobRow(db, runId, "build");
  assert.deepEqual([job.state, job.agent_id, job.message], [RunState.RUNNING, a.id, `attempt 1 on agent ${a.id}`]);
  assert.ok(job.started_at);

  assert.deepEqual(
    (await reservationRows(db, { runId })).map((r) => [r.kind, r.name, r.attempt]),
    [["slot", a.id, 1]],
  );
  assert.deepEqual(await liveAttemptsOf(db, runId), [{ job: "build", attempt: 1, agent_id: a.id }]);
  assert.equal(await tokenIsLive(db, runId, "build", 1, a.id), true);
  assert.equal(await tokenIsLive(db, runId, "build", 1, "someone-else"), false);
  assert.deepEqual(await journalSince(db, runId, before), ["run RUNNING", `build RUNNING: attempt 1 on agent ${a.id}`]);
});

test("a second job of a running run does not move the run again", async () => {
  const s = scope(db);
  const runId = await s.submit({ a: {}, b: {} });
  const first = await claim(db, s.agent("x", { slot: 0 }));
  const second = await claim(db, s.agent("x", { slot: 1 }));
  assert.ok(first && second);
  assert.deepEqual([first.job, second.job].sort(), ["a", "b"]);
  const lines = await journalLines(db, runId);
  assert.equal(lines.filter((l) => l === "run RUNNING").length, 1);
  assert.deepEqual(await tasksOf(db, runId), { a: "assigned", b: "assigned" });
});

test("nothing to claim: no task, not contended", async () => {
  const s = scope(db);
  const result = await db.tx((client) => claimTask(client, s.agent("idle"), 10_000));
  assert.deepEqual(result, { contended: false });
});

test("an agent gets only tasks whose labels it all has", async () => {
  const s = scope(db);
  const runId = await s.submit({ gpu: { runsOn: ["gpu"] } });
  assert.equal(await claim(db, s.agent("plain")), undefined);
  assert.equal(await claim(db, s.agent("other-gpu", { labels: ["gpu"] })), undefined, "one of the labels is not enough");
  assert.equal((await taskOf(db, runId, "gpu")).status, "pending");
  const claimed = await claim(db, s.agent("big", { labels: [s.label, "gpu", "x86"] }));
  assert.equal(claimed?.run_id, runId);
});

test("the oldest pending task is claimed first", async () => {
  const s = scope(db);
  const older = await s.submit({ build: {} });
  const newer = await s.submit({ build: {} });
  assert.equal((await claim(db, s.agent("x", { slot: 0 })))?.run_id, older);
  assert.equal((await claim(db, s.agent("x", { slot: 1 })))?.run_id, newer);
});

test("an agent gets no more tasks than it has slots; another agent takes the rest, and a finished attempt frees its slot", async () => {
  const s = scope(db);
  const runId = await s.submit({ a: {}, b: {}, c: {} });
  const one = s.agent("one", { slots: 2 });
  // Each claim from a slot of its own (a slot asking again is given its
  // unstarted task again: a lost answer).
  const first = await claim(db, { ...one, slot: 0 });
  const second = await claim(db, { ...one, slot: 1 });
  assert.ok(first && second);
  const refused = await db.tx((client) => claimTask(client, { ...one, slot: 2 }, 10_000));
  assert.equal(refused.task, undefined);
  const pending = Object.entries(await tasksOf(db, runId)).filter(([, status]) => status === "pending");
  assert.equal(pending.length, 1);
  assert.equal((await reservationRows(db, { runId })).filter((r) => r.name === one.id).length, 2);

  await db.tx((client) =>
    completeTask(client, db.boss, { taskId: first.id, attempt: 1 }, { state: RunState.SUCCEEDED, message: "", steps: [{ stepIndex: 0, state: RunState.SUCCEEDED, exitCode: 0 }] }),
  );
  const third = await claim(db, { ...one, slot: 0 });
  assert.equal(third?.job, pending[0][0]);
  assert.equal((await reservationRows(db, { runId })).filter((r) => r.name === one.id).length, 2);

  // Slots are counted per agent.
  const runId2 = await s.submit({ d: {} });
  assert.equal(await claim(db, { ...one, slot: 2 }), undefined);
  assert.equal((await claim(db, s.agent("two", { slots: 1 })))?.run_id, runId2);
});

test("cpu and memory are reserved with the slot: a task that does not fit what is left waits", async () => {
  const s = scope(db);
  const pipeline = pipelineOf({ a: { runsOn: [s.label] }, b: { runsOn: [s.label] } });
  for (const job of pipeline.jobs) job.resources = create(ResourcesSchema, { cpu: 1.5, memoryBytes: 1n << 30n });
  const { runId } = await submitRun(db.pool, pipeline, 1_000, randomUUID());
  const small = s.agent("small", { cpu: 2, memoryBytes: 4n << 30n });
  assert.ok(await claim(db, { ...small, slot: 0 }));
  assert.equal(await claim(db, { ...small, slot: 1 }), undefined, "1.5 + 1.5 cpus do not fit in 2");
  const { rows } = await db.pool.query("SELECT cpu, memory_bytes FROM coordinator.reservations WHERE run_id = $1", [runId]);
  assert.deepEqual(rows, [{ cpu: 1.5, memory_bytes: String(1n << 30n) }]);
  const lowMemory = s.agent("low-memory", { cpu: 8, memoryBytes: 1n << 29n });
  assert.equal(await claim(db, lowMemory), undefined, "1 GiB does not fit in 512 MiB");
  assert.ok(await claim(db, s.agent("large", { cpu: 8, memoryBytes: 8n << 30n })));
});

test("a job's locks are reserved all together or not at all", async () => {
  const s = scope(db);
  const [db1, cache] = [s.lock("db"), s.lock("cache")];
  const holder = await s.submit({ migrate: { locks: [db1] } });
  const holding = await claim(db, s.agent("h"));
  assert.equal(holding?.run_id, holder);
  assert.equal(holding?.reserved, `slot on ${s.agent("h").id}, lock ${db1}`);
  assert.equal((await jobRow(db, holder, "migrate")).message, `attempt 1 on agent ${s.agent("h").id}; holds lock ${db1}`);

  const both = await s.submit({ deploy: { locks: [cache, db1] } });
  assert.equal(await claim(db, s.agent("w")), undefined);
  // The free lock was not kept either, and the task still waits.
  assert.deepEqual(await reservationRows(db, { runId: both }), []);
  assert.equal((await taskOf(db, both, "deploy")).status, "pending");
  const cacheOnly = await s.submit({ warm: { locks: [cache] } });
  const warm = await claim(db, s.agent("w"));
  assert.equal(warm?.run_id, cacheOnly, "a newer task that fits is claimed past the one that does not");
  assert.deepEqual(
    (await reservationRows(db, { runId: cacheOnly })).map((r) => [r.kind, r.name]),
    [["slot", s.agent("w").id], ["lock", cache]],
  );

  // With both locks given back, the waiting task gets them both.
  for (const claimed of [holding!, warm!]) {
    await db.tx((client) => completeTask(client, db.boss, { taskId: claimed.id, attempt: 1 }, { state: RunState.SUCCEEDED, message: "", steps: [] }));
  }
  const deploy = await claim(db, s.agent("w"));
  assert.equal(deploy?.run_id, both);
  assert.deepEqual(
    (await reservationRows(db, { runId: both })).map((r) => [r.kind, r.name, r.attempt]),
    [["slot", s.agent("w").id, 1], ["lock", cache, 1], ["lock", db1, 1]],
  );
});

test("a lock with a limit is held by that many jobs at once, each in a place of its own, alongside a lock held alone", async () => {
  const s = scope(db);
  const [pool, prod] = [s.lock("pool"), s.lock("prod")];
  const shared = { locks: [pool], lockLimits: { [pool]: 2 } };
  const first = await s.submit({ a: shared });
  const second = await s.submit({ b: { locks: [pool, prod], lockLimits: { [pool]: 2 } } });
  const third = await s.submit({ c: shared });
  const claims = [await claim(db, s.agent("x")), await claim(db, s.agent("y"))];
  assert.deepEqual(claims.map((c) => c?.run_id), [first, second]);
  assert.equal(claims[1]?.reserved, `slot on ${s.agent("y").id}, lock ${pool}, lock ${prod}`);
  assert.deepEqual(
    [...(await reservationRows(db, { runId: first })), ...(await reservationRows(db, { runId: second }))].filter((r) => r.kind === "lock").map((r) => r.name),
    [pool, `${pool}#2`, prod],
  );
  // Both places are held: the third waits, keeping nothing.
  assert.equal(await claim(db, s.agent("z")), undefined);
  assert.deepEqual(await reservationRows(db, { runId: third }), []);

  // A place given back is the next one's.
  await db.tx((client) => completeTask(client, db.boss, { taskId: claims[0]!.id, attempt: 1 }, { state: RunState.SUCCEEDED, message: "", steps: [] }));
  const next = await claim(db, s.agent("z"));
  assert.equal(next?.run_id, third);
  assert.deepEqual((await reservationRows(db, { runId: third })).filter((r) => r.kind === "lock").map((r) => r.name), [pool]);
});

test("a claim whose answer was lost is given again to the same slot of the same agent process, and to nobody else", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: { steps: ["make", "make check"] } });
  const a = s.agent("a", { slot: 1, incarnation: "first", slots: 1 });
  const claimed = await claim(db, a, 60_000);
  assert.ok(claimed);
  // The lease is made short to see it start over.
  await db.pool.query("UPDATE coordinator.tasks SET lease_expires_at = now() + interval '1 second' WHERE id = $1", [claimed.id]);
  const journalBefore = await journalLines(db, runId);

  // Another slot, another process of the same agent, or the slot saying it
  // runs the task: none of them is given it again (and the full agent gets nothing).
  assert.equal(await claim(db, { ...a, slot: 0 }), undefined);
  assert.equal(await claim(db, { ...a, incarnation: "second" }), undefined);
  assert.equal(await claim(db, { ...a, runningTaskIds: [claimed.id] }), undefined);

  const again = await claim(db, a, 60_000);
  assert.deepEqual(again && { id: again.id, attempt: again.attempt, job: again.job }, { id: claimed.id, attempt: 1, job: "build" });
  assert.deepEqual(again?.spec, claimed.spec, "the job is given again as it was the first time");
  assert.ok((await leaseSecondsLeft(claimed.id)) > 50, "the lease starts over");
  const task = await taskOf(db, runId, "build");
  assert.deepEqual([task.status, task.attempt, task.agent_id], ["assigned", 1, a.id]);
  // Given again, not claimed again: no second reservation, no journal entry.
  assert.equal((await reservationRows(db, { runId })).length, 1);
  assert.deepEqual(await journalSince(db, runId, journalBefore), []);

  // Once the agent reported a step, the task is its: not handed out again.
  await db.tx((client) => reportSteps(client, { taskId: claimed.id, attempt: 1 }, [{ stepIndex: 0, state: RunState.RUNNING }]));
  assert.equal((await taskOf(db, runId, "build")).started, true);
  assert.equal(await claim(db, a), undefined);
});

test("a task whose run another transaction holds is passed over, and the claim says it is worth trying again soon", async () => {
  const s = scope(db);
  const runId = await s.submit({ build: {} });
  const holder = await db.pool.connect();
  try {
    await holder.query("BEGIN");
    await holder.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
    const result = await db.tx((client) => claimTask(client, s.agent("x"), 10_000));
    assert.deepEqual(result, { contended: true });
  } finally {
    await holder.query("ROLLBACK");
    holder.release();
  }
  assert.equal((await claim(db, s.agent("x")))?.run_id, runId);
});
