import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { startProjectRun } from "@otto/coordinator/engine/start-project-run";
import { prepareQueue } from "@otto/coordinator/engine/project-run-queue";
import { advanceRun } from "@otto/coordinator/engine/advance-run";
import { project, run, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { journalLines, refused, RunState, runRow } from "./engine-rows.ts";

// startProjectRun: a project's run of a commit is made QUEUED, numbered,
// without jobs, with the work of reading its pipeline queued in the same
// transaction; the same delivery again is the same run.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const sha = "a".repeat(40);
const push = { event: "push", ref: "refs/heads/main", branch: "main", sha };

async function queuedPrepares(runId: string): Promise<number> {
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND data->>'runId' = $2", [prepareQueue, runId]);
  return rows[0].n;
}

test("a project's run is QUEUED with no jobs, numbered from 1, its source kept, and its preparation queued", async () => {
  const name = await project(db);
  const first = await db.tx((client) => startProjectRun(client, db.boss, { project: name, source: push, requestId: "", maxActiveRuns: 100 }));
  const second = await db.tx((client) => startProjectRun(client, db.boss, { project: name, source: { ...push, sha: "b".repeat(40) }, requestId: "", maxActiveRuns: 100 }));
  assert.deepEqual([first.number, second.number, first.created], [1n, 2n, true]);
  const stored = await run(db, first.runId);
  assert.equal(stored.state, RunState.QUEUED);
  assert.equal(stored.jobs.length, 0);
  assert.equal(stored.name, name);
  assert.deepEqual(
    { project: stored.source?.project, number: stored.source?.number, event: stored.source?.event, branch: stored.source?.branch, sha: stored.source?.sha, repoUrl: stored.source?.repoUrl },
    { project: name, number: 1n, event: "push", branch: "main", sha, repoUrl: "file:///nowhere/acme/app.git" },
  );
  assert.equal(await queuedPrepares(first.runId), 1);
  assert.deepEqual(await journalLines(db, first.runId), [`run QUEUED: run 1 of project ${name} (push to main); reading .otto.yml at ${sha.slice(0, 12)}`]);
  const { rows } = await db.pool.query("SELECT last_run_number FROM coordinator.projects WHERE name = $1", [name]);
  assert.equal(rows[0].last_run_number, "2");
});

test("the same request id again answers the first run and makes nothing", async () => {
  const name = await project(db);
  const requestId = `delivery ${randomUUID()}`;
  const first = await db.tx((client) => startProjectRun(client, db.boss, { project: name, source: push, requestId, maxActiveRuns: 100 }));
  const again = await Promise.all(
    [1, 2, 3].map(() => db.tx((client) => startProjectRun(client, db.boss, { project: name, source: push, requestId, maxActiveRuns: 100 }))),
  );
  assert.deepEqual(
    again.map((a) => [a.runId, a.created, a.number]),
    [1, 2, 3].map(() => [first.runId, false, 1n]),
  );
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE project = $1", [name]);
  assert.equal(rows[0].n, 1);
  assert.equal(await queuedPrepares(first.runId), 1);
  // Another project's delivery of the same id is its own.
  const other = await project(db);
  const theirs = await db.tx((client) => startProjectRun(client, db.boss, { project: other, source: push, requestId, maxActiveRuns: 100 }));
  assert.notEqual(theirs.runId, first.runId);
});

test("an unknown project is not_found, and too many runs in progress resource_exhausted, with nothing made", async () => {
  await refused(
    db.tx((client) => startProjectRun(client, db.boss, { project: "no-such-project", source: push, requestId: "", maxActiveRuns: 100 })),
    Code.NotFound,
    /no project is named no-such-project/,
  );
  const name = await project(db);
  await refused(
    db.tx((client) => startProjectRun(client, db.boss, { project: name, source: push, requestId: "", maxActiveRuns: 0 })),
    Code.ResourceExhausted,
    /OTTO_MAX_ACTIVE_RUNS/,
  );
  const { rows } = await db.pool.query("SELECT last_run_number, (SELECT count(*)::int FROM coordinator.runs WHERE project = $1) AS runs FROM coordinator.projects WHERE name = $1", [name]);
  assert.deepEqual([rows[0].last_run_number, rows[0].runs], ["0", 0]);
});

test("a run still without jobs is not finished by an advance, and a cancel ends it CANCELED", async () => {
  const name = await project(db);
  const { runId } = await db.tx((client) => startProjectRun(client, db.boss, { project: name, source: push, requestId: "", maxActiveRuns: 100 }));
  await db.tx((client) => advanceRun(client, runId));
  assert.equal((await runRow(db, runId)).state, RunState.QUEUED);
  const { cancelRun } = await import("@otto/coordinator/engine/cancel-run");
  await db.tx((client) => cancelRun(client, runId));
  assert.equal((await runRow(db, runId)).state, RunState.CANCELED);
});
