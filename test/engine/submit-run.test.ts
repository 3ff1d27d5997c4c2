import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { shardOf } from "@otto/coordinator/shards";
import { pipelineOf, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobStates, journalLines, refused, RunState, runRow, stepsOf, tasksOf } from "./engine-rows.ts";

// submitRun: a validated pipeline becomes a QUEUED run whose first jobs are
// ready at once; a request sent again is the same run; too many unfinished
// runs refuse new ones.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

async function activeRuns(): Promise<number> {
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE finished_at IS NULL");
  return rows[0].n;
}

async function runsWithRequest(requestId: string): Promise<number> {
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE request_id = $1", [requestId]);
  return rows[0].n;
}

test("a run is stored QUEUED with its jobs and steps, and tasks only for the jobs that need nothing", async () => {
  const requestId = randomUUID();
  const pipeline = pipelineOf({
    build: { steps: ["make all\nmake check", "echo done"], runsOn: ["linux", "x64"], retry: { max: 2, exitCodes: [3, 4], agentLost: false } },
    lint: { steps: ["npm run lint"] },
    test: { needs: ["build"], steps: ["make test"] },
    deploy: { needs: ["build", "test"], locks: ["prod"] },
  });
  pipeline.jobs[1].steps[0].name = "Lint it";
  const { runId, created } = await submitRun(db.pool, pipeline, 1_000, requestId);

  const run = await runRow(db, runId);
  assert.equal(run.state, RunState.QUEUED);
  assert.equal(run.cancel_requested, false);
  assert.equal(run.started_at, null);
  assert.equal(run.finished_at, null);
  const { rows: stored } = await db.pool.query("SELECT name, shard, request_id, pipeline FROM coordinator.runs WHERE id = $1", [runId]);
  assert.deepEqual([stored[0].name, stored[0].shard, stored[0].request_id], ["engine-test", shardOf(runId), requestId]);
  assert.deepEqual(
    stored[0].pipeline.jobs.map((j: { name: string }) => j.name),
    ["build", "lint", "test", "deploy"],
  );

  assert.deepEqual(await jobStates(db, runId), { build: "QUEUED", lint: "QUEUED", test: "QUEUED", deploy: "QUEUED" });
  const { rows: jobs } = await db.pool.query(
    "SELECT name, position, needs, runs_on, locks, retry_max, retry_exit_codes, retry_agent_lost FROM coordinator.jobs WHERE run_id = $1 ORDER BY position",
    [runId],
  );
  assert.deepEqual(jobs[0], {
    name: "build",
    position: 0,
    needs: [],
    runs_on: ["linux", "x64"],
    locks: [],
    retry_max: 2,
    retry_exit_codes: [3, 4],
    retry_agent_lost: false,
  });
  assert.deepEqual(jobs[3], {
    name: "deploy",
    position: 3,
    needs: ["build", "test"],
    runs_on: [],
    locks: ["prod"],
    retry_max: 0,
    retry_exit_codes: [],
    retry_agent_lost: null,
  });

  // Unnamed steps take the first line of their command as their name.
  assert.deepEqual(
    (await stepsOf(db, runId, "build")).map((s) => [s.position, s.name, s.state, s.exit_code, s.started_at]),
    [
      [0, "make all", RunState.QUEUED, null, null],
      [1, "echo done", RunState.QUEUED, null, null],
    ],
  );
  assert.deepEqual((await stepsOf(db, runId, "lint")).map((s) => s.name), ["Lint it"]);

  assert.deepEqual(await tasksOf(db, runId), { build: "pending", lint: "pending" });
  const { rows: tasks } = await db.pool.query("SELECT job, labels, attempt, agent_id FROM coordinator.tasks WHERE run_id = $1 ORDER BY job", [runId]);
  assert.deepEqual(tasks, [
    { job: "build", labels: ["linux", "x64"], attempt: 0, agent_id: "" },
    { job: "lint", labels: [], attempt: 0, agent_id: "" },
  ]);

  assert.deepEqual(await journalLines(db, runId), ['run QUEUED: run of "engine-test" submitted']);
  assert.equal((await runRow(db, runId)).last_seq, "1");

  // The answer is the run as stored.
  assert.ok(created);
  assert.equal(created.id, runId);
  assert.equal(created.state, RunState.QUEUED);
  assert.equal(created.name, "engine-test");
  const { rows: createdAt } = await db.pool.query("SELECT created_at FROM coordinator.runs WHERE id = $1", [runId]);
  assert.equal(Number(created.createdAt!.seconds) * 1000 + Math.floor(created.createdAt!.nanos / 1e6), createdAt[0].created_at.getTime());
  assert.deepEqual(
    created.jobs.map((j) => [j.name, j.state, j.needs, j.steps.map((st) => [st.name, st.state])]),
    [
      ["build", RunState.QUEUED, [], [["make all", RunState.QUEUED], ["echo done", RunState.QUEUED]]],
      ["lint", RunState.QUEUED, [], [["Lint it", RunState.QUEUED]]],
      ["test", RunState.QUEUED, ["build"], [["make test", RunState.QUEUED]]],
      ["deploy", RunState.QUEUED, ["build", "test"], [["true", RunState.QUEUED]]],
    ],
  );
});

test("the same request id sent again is answered with the first run, and stores nothing", async () => {
  const requestId = randomUUID();
  const { runId: first } = await submitRun(db.pool, pipelineOf({ build: {} }), 1_000, requestId);
  const journalBefore = await journalLines(db, first);
  const again = await submitRun(db.pool, pipelineOf({ other: {} }, "different"), 1_000, requestId);
  // The run found, not one made now.
  assert.deepEqual(again, { runId: first });
  assert.equal(await runsWithRequest(requestId), 1);
  assert.deepEqual(await jobStates(db, first), { build: "QUEUED" });
  assert.deepEqual(await journalLines(db, first), journalBefore);
});

test("two submits of one request at the same time make one run", async () => {
  const requestId = randomUUID();
  const answers = await Promise.all([
    submitRun(db.pool, pipelineOf({ build: {} }), 1_000, requestId),
    submitRun(db.pool, pipelineOf({ build: {} }), 1_000, requestId),
  ]);
  const ids = answers.map((a) => a.runId);
  assert.equal(ids[0], ids[1]);
  assert.equal(answers.filter((a) => a.created).length, 1, "one of them made the run");
  assert.equal(await runsWithRequest(requestId), 1);
  assert.deepEqual(await tasksOf(db, ids[0]), { build: "pending" });
});

test("without a request id every submit is a run of its own", async () => {
  const { runId: a } = await submitRun(db.pool, pipelineOf({ build: {} }), 1_000, "");
  const { runId: b } = await submitRun(db.pool, pipelineOf({ build: {} }), 1_000, "");
  assert.notEqual(a, b);
  const { rows } = await db.pool.query("SELECT request_id FROM coordinator.runs WHERE id = ANY($1)", [[a, b]]);
  assert.deepEqual(rows.map((r) => r.request_id), [null, null]);
});

test("at the most active runs a new run is refused (resource_exhausted) and nothing is stored; a finished run frees its place", async () => {
  const { runId: known } = await submitRun(db.pool, pipelineOf({ build: {} }), 1_000, randomUUID());
  const limit = await activeRuns();
  const { rows: before } = await db.pool.query("SELECT count(*)::int AS n FROM coordinator.runs");

  const requestId = randomUUID();
  await refused(submitRun(db.pool, pipelineOf({ build: {} }), limit, requestId), Code.ResourceExhausted, new RegExp(`${limit} runs are in progress`));
  const { rows: after } = await db.pool.query("SELECT count(*)::int AS n FROM coordinator.runs");
  assert.equal(after[0].n, before[0].n);
  assert.equal(await runsWithRequest(requestId), 0);

  // A request that was stored is still answered at the limit.
  const { rows: knownRequest } = await db.pool.query("SELECT request_id FROM coordinator.runs WHERE id = $1", [known]);
  assert.deepEqual(await submitRun(db.pool, pipelineOf({ build: {} }), limit, knownRequest[0].request_id), { runId: known });

  // Canceling a run that never started finishes it: one place is free again.
  await db.tx((client) => cancelRun(client, known));
  assert.equal((await runRow(db, known)).state, RunState.CANCELED);
  const { runId: accepted } = await submitRun(db.pool, pipelineOf({ build: {} }), limit, requestId);
  assert.equal((await runRow(db, accepted)).state, RunState.QUEUED);
  await refused(submitRun(db.pool, pipelineOf({ build: {} }), limit, randomUUID()), Code.ResourceExhausted);
});
