import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { applyChanges, type Change } from "@otto/coordinator/engine/apply-changes";
import { RunState } from "@otto/coordinator/engine/states";
import { IllegalTransitionError, isLegal, transitions, type Entity, type TaskStatus } from "@otto/coordinator/engine/transitions";
import { journal, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";

// Every move of the table, legal and illegal, through the one write path,
// on real rows: a legal one is written and journaled, an illegal one is an
// error naming the entity and both states, and writes nothing.

const runStates = [RunState.QUEUED, RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED];
// Only jobs wait (for approval); jobs and their steps may be skipped, runs not.
const jobStatesAll = [...runStates, RunState.WAITING, RunState.SKIPPED];
const stepStatesAll = [...runStates, RunState.SKIPPED];
const taskStatuses: TaskStatus[] = ["pending", "assigned", "done"];
const assignment = { attempt: 1, agentId: "agent-1", slot: 0, incarnation: "one", leaseMs: 10_000 };

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

// A run of one job with one step and a task, each entity in the state asked for.
async function rowsIn(entity: Entity, state: RunState | TaskStatus): Promise<string> {
  const runId = randomUUID();
  const runState = entity === "run" ? state : RunState.RUNNING;
  const jobState = entity === "job" ? state : RunState.RUNNING;
  const stepState = entity === "step" ? state : RunState.QUEUED;
  const taskStatus = entity === "task" ? state : "assigned";
  await db.pool.query(
    `WITH run AS (INSERT INTO coordinator.runs (id, name, state, pipeline) VALUES ($1, 't', $2, '{}')),
       job AS (INSERT INTO coordinator.jobs (run_id, name, position, state, needs, runs_on) VALUES ($1, 'build', 0, $3, '{}', '{}')),
       step AS (INSERT INTO coordinator.steps (run_id, job, position, name, state) VALUES ($1, 'build', 0, 'make', $4))
     INSERT INTO coordinator.tasks (id, run_id, job, labels, status, attempt) VALUES ($5, $1, 'build', '{}', $6, 1)`,
    [runId, runState, jobState, stepState, randomUUID(), taskStatus],
  );
  return runId;
}

async function stateOf(entity: Entity, runId: string): Promise<RunState | TaskStatus> {
  const sql = {
    run: "SELECT state FROM coordinator.runs WHERE id = $1",
    job: "SELECT state FROM coordinator.jobs WHERE run_id = $1",
    step: "SELECT state FROM coordinator.steps WHERE run_id = $1",
    task: "SELECT status AS state FROM coordinator.tasks WHERE run_id = $1",
  }[entity];
  const { rows } = await db.pool.query(sql, [runId]);
  return rows[0].state;
}

async function changeOf(entity: Entity, runId: string, from: RunState | TaskStatus, to: RunState | TaskStatus): Promise<Change> {
  switch (entity) {
    case "run":
      return { entity, from: from as RunState, to: to as RunState };
    case "job":
      return { entity, job: "build", from: from as RunState, to: to as RunState };
    case "step":
      return { entity, job: "build", position: 0, name: "make", from: from as RunState, to: to as RunState };
    case "task": {
      const { rows } = await db.pool.query("SELECT id FROM coordinator.tasks WHERE run_id = $1", [runId]);
      return { entity, taskId: rows[0].id, job: "build", from: from as TaskStatus, to: to as TaskStatus, assignment };
    }
  }
}

const machines: [Entity, readonly (RunState | TaskStatus)[]][] = [
  ["run", runStates],
  ["job", jobStatesAll],
  ["step", stepStatesAll],
  ["task", taskStatuses],
];

for (const [entity, states] of machines) {
  describe(`${entity} transitions`, () => {
    test("every state an entity can be in is reachable from its initial state", () => {
      const reached = new Set<RunState | TaskStatus>([transitions[entity].initial]);
      for (let grew = true; grew; ) {
        grew = false;
        for (const from of [...reached]) {
          for (const to of states) {
            if (isLegal(entity, from, to) && !reached.has(to)) {
              reached.add(to);
              grew = true;
            }
          }
        }
      }
      assert.deepEqual([...reached].sort(), [...states].sort());
    });

    for (const from of states) {
      for (const to of states) {
        const legal = isLegal(entity, from, to);
        test(`${String(from)} -> ${String(to)} is ${legal ? "applied and journaled" : "refused"}`, async () => {
          const runId = await rowsIn(entity, from);
          const before = await journal(db, runId);
          const change = await changeOf(entity, runId, from, to);
          if (legal) {
            await db.tx((client) => applyChanges(client, runId, [change]));
            assert.equal(await stateOf(entity, runId), to);
            const entries = (await journal(db, runId)).slice(before.length);
            // Task moves ride with their job's entry; the others are journaled.
            assert.equal(entries.length, entity === "task" ? 0 : 1);
            if (entity !== "task") assert.equal(entries[0].state, to);
          } else {
            await assert.rejects(
              db.tx((client) => applyChanges(client, runId, [change])),
              (err: unknown) => err instanceof IllegalTransitionError && err.message.includes(entity === "run" ? "the run" : entity === "task" ? "task" : entity),
            );
            assert.equal(await stateOf(entity, runId), from);
            assert.equal((await journal(db, runId)).length, before.length);
          }
        });
      }
    }
  });
}

test("a change whose row is not in the state its writer read is refused, naming the state found, and nothing of its batch is written", async () => {
  const runId = await rowsIn("job", RunState.SUCCEEDED);
  await assert.rejects(
    db.tx((client) =>
      applyChanges(client, runId, [
        { entity: "step", job: "build", position: 0, name: "make", from: RunState.QUEUED, to: RunState.RUNNING },
        { entity: "job", job: "build", from: RunState.QUEUED, to: RunState.RUNNING },
      ]),
    ),
    /job "build": SUCCEEDED -> RUNNING/,
  );
  assert.equal(await stateOf("step", runId), RunState.QUEUED);
  assert.equal((await journal(db, runId)).length, 0);
});

test("a change of an entity that does not exist is refused", async () => {
  const runId = await rowsIn("job", RunState.QUEUED);
  await assert.rejects(
    db.tx((client) => applyChanges(client, runId, [{ entity: "job", job: "deploy", from: RunState.QUEUED, to: RunState.RUNNING }])),
    /job "deploy": \(missing\) -> RUNNING \(it does not exist\)/,
  );
});

test("changes of one entity chain within a batch, and a broken chain is refused", async () => {
  const runId = await rowsIn("step", RunState.QUEUED);
  const atMs = Date.now() - 5_000;
  await db.tx((client) =>
    applyChanges(client, runId, [
      { entity: "step", job: "build", position: 0, name: "make", from: RunState.QUEUED, to: RunState.RUNNING, atMs },
      { entity: "step", job: "build", position: 0, name: "make", from: RunState.RUNNING, to: RunState.SUCCEEDED, exitCode: 0 },
    ]),
  );
  const { rows } = await db.pool.query("SELECT state, exit_code, started_at FROM coordinator.steps WHERE run_id = $1", [runId]);
  assert.deepEqual([rows[0].state, rows[0].exit_code, rows[0].started_at.getTime()], [RunState.SUCCEEDED, 0, atMs]);
  assert.deepEqual((await journal(db, runId)).map((e) => e.state), [RunState.RUNNING, RunState.SUCCEEDED]);

  await assert.rejects(
    db.tx((client) =>
      applyChanges(client, runId, [
        { entity: "step", job: "build", position: 0, name: "make", from: RunState.SUCCEEDED, to: RunState.QUEUED },
        { entity: "step", job: "build", position: 0, name: "make", from: RunState.RUNNING, to: RunState.FAILED },
      ]),
    ),
    /the change before it in the same batch left it/,
  );
});
