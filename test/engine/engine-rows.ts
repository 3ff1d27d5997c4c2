import assert from "node:assert/strict";
import pg from "pg";
import { Code, ConnectError } from "@connectrpc/connect";
import { requireLiveAttempt } from "@otto/kit/live-attempts";
import { runStateName } from "@otto/contracts/run-state";
import { advanceQueue } from "@otto/coordinator/engine/run-queue";
import { RunState } from "@otto/coordinator/engine/states";
import { shardOf } from "@otto/coordinator/shards";
import { randomUUID } from "node:crypto";
import type { Claimant } from "@otto/coordinator/engine/claim-task";
import { agent, journal, submit, type EngineDb, type JobSpec } from "../helpers/engine-db.ts";

// Readers of the engine's rows for the operation tests, and the shapes
// their assertions compare.

export { RunState };

// A label, agent ids and lock names of one test's own: its runs' jobs all
// carry the label and its agents have it, so that the tasks other tests of
// the file left pending are never its agents' candidates (nor its tasks theirs).
export function scope(db: EngineDb) {
  const id = randomUUID().slice(0, 8);
  const label = `l-${id}`;
  return {
    label,
    agent: (name: string, overrides: Partial<Claimant> = {}) => agent(`${name}-${id}`, { labels: [label], ...overrides }),
    lock: (name: string) => `${name}-${id}`,
    submit: (jobs: Record<string, JobSpec>) =>
      submit(db, Object.fromEntries(Object.entries(jobs).map(([name, job]) => [name, { ...job, runsOn: [label, ...(job.runsOn ?? [])] }]))),
  };
}

export interface TaskRow {
  id: string;
  run_id: string;
  job: string;
  status: string;
  attempt: number;
  agent_id: string;
  agent_slot: number;
  agent_incarnation: string;
  cancel_requested: boolean;
  started: boolean;
  handbacks: number;
  lease_expires_at: Date | null;
  labels: string[];
}

export async function taskOf(db: EngineDb, runId: string, job: string): Promise<TaskRow> {
  const { rows } = await db.pool.query("SELECT * FROM coordinator.tasks WHERE run_id = $1 AND job = $2", [runId, job]);
  assert.equal(rows.length, 1, `job ${job} has a task`);
  return rows[0];
}

export async function tasksOf(db: EngineDb, runId: string): Promise<Record<string, string>> {
  const { rows } = await db.pool.query("SELECT job, status FROM coordinator.tasks WHERE run_id = $1 ORDER BY job", [runId]);
  return Object.fromEntries(rows.map((r) => [r.job, r.status]));
}

export async function runRow(db: EngineDb, runId: string) {
  const { rows } = await db.pool.query("SELECT * FROM coordinator.runs WHERE id = $1", [runId]);
  return rows[0] as { state: RunState; cancel_requested: boolean; started_at: Date | null; finished_at: Date | null; last_seq: string };
}

// Each job's state by name, as "NAME" strings.
export async function jobStates(db: EngineDb, runId: string): Promise<Record<string, string>> {
  const { rows } = await db.pool.query("SELECT name, state FROM coordinator.jobs WHERE run_id = $1 ORDER BY position", [runId]);
  return Object.fromEntries(rows.map((r) => [r.name, runStateName(r.state)]));
}

export async function jobRow(db: EngineDb, runId: string, job: string) {
  const { rows } = await db.pool.query("SELECT * FROM coordinator.jobs WHERE run_id = $1 AND name = $2", [runId, job]);
  return rows[0] as { state: RunState; message: string; agent_id: string; started_at: Date | null; finished_at: Date | null };
}

export async function stepsOf(db: EngineDb, runId: string, job: string) {
  const { rows } = await db.pool.query(
    "SELECT position, name, state, exit_code, started_at, finished_at FROM coordinator.steps WHERE run_id = $1 AND job = $2 ORDER BY position",
    [runId, job],
  );
  return rows as { position: number; name: string; state: RunState; exit_code: number | null; started_at: Date | null; finished_at: Date | null }[];
}

// A job's steps as "STATE" or "STATE exit N" strings, in order.
export async function stepStates(db: EngineDb, runId: string, job: string): Promise<string[]> {
  return (await stepsOf(db, runId, job)).map((s) => runStateName(s.state) + (s.exit_code === null ? "" : ` exit ${s.exit_code}`));
}

// The run's journal as lines: "JOB[/STEP] STATE[ exit N][: message]", the
// run's own entries as "run ...". Checks on the way that the journal is
// gap-free and ends at the run's last_seq.
export async function journalLines(db: EngineDb, runId: string): Promise<string[]> {
  const entries = await journal(db, runId);
  assert.deepEqual(
    entries.map((e) => Number(e.seq)),
    entries.map((_, i) => i + 1),
    "journal sequence numbers are 1..n",
  );
  const { rows } = await db.pool.query("SELECT last_seq FROM coordinator.runs WHERE id = $1", [runId]);
  if (rows.length > 0) assert.equal(Number(rows[0].last_seq), entries.length, "the run's last_seq is its journal's last entry");
  return entries.map(
    (e) =>
      `${e.job || "run"}${e.step ? `/${e.step}` : ""} ${runStateName(e.state as RunState)}` +
      (e.exit_code === null ? "" : ` exit ${e.exit_code}`) +
      (e.message ? `: ${e.message}` : ""),
  );
}

// The journal entries written since `before` lines.
export async function journalSince(db: EngineDb, runId: string, before: string[]): Promise<string[]> {
  const lines = await journalLines(db, runId);
  assert.deepEqual(lines.slice(0, before.length), before, "the journal only grows");
  return lines.slice(before.length);
}

export async function reservationRows(db: EngineDb, where: { runId?: string; taskId?: string } = {}) {
  const { rows } = await db.pool.query(
    `SELECT kind, name, attempt, lease_expires_at FROM coordinator.reservations
     WHERE ($1::uuid IS NULL OR run_id = $1) AND ($2::uuid IS NULL OR task_id = $2) ORDER BY kind DESC, name`,
    [where.runId ?? null, where.taskId ?? null],
  );
  return rows as { kind: string; name: string; attempt: number; lease_expires_at: Date }[];
}

// Whether an attempt's task token may still write, by the objects
// service's own check.
export async function tokenIsLive(db: EngineDb, runId: string, job: string, attempt: number, agentId: string): Promise<boolean> {
  try {
    await requireLiveAttempt(db.pool, { runId, job, attempt }, agentId);
    return true;
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.FailedPrecondition) return false;
    throw err;
  }
}

// "advance run" jobs waiting in the run's shard queue.
export async function queuedAdvances(db: EngineDb, runId: string): Promise<number> {
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = $1 AND data->>'runId' = $2", [
    advanceQueue(shardOf(runId)),
    runId,
  ]);
  return rows[0].n;
}

// Makes a task's lease (and its reservations') lapse now.
export async function lapseLease(db: EngineDb, taskId: string): Promise<void> {
  await db.pool.query(
    `WITH t AS (UPDATE coordinator.tasks SET lease_expires_at = now() - interval '1 second' WHERE id = $1)
     UPDATE coordinator.reservations SET lease_expires_at = now() - interval '1 second' WHERE task_id = $1`,
    [taskId],
  );
}

// Asserts that `promise` is refused with `code`, its message matching `pattern`.
export async function refused(promise: Promise<unknown>, code: Code, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof ConnectError, `a ConnectError, not ${String(err)}`);
    assert.equal(Code[err.code], Code[code], err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

// Everything an operation could change, to show a refusal changed nothing.
export async function snapshot(db: EngineDb, runId: string) {
  const [run, jobs, steps, tasks, reservations, live, lines] = await Promise.all([
    db.pool.query("SELECT state, cancel_requested, started_at, finished_at, last_seq FROM coordinator.runs WHERE id = $1", [runId]),
    db.pool.query("SELECT name, state, message, agent_id, started_at, finished_at FROM coordinator.jobs WHERE run_id = $1 ORDER BY name", [runId]),
    db.pool.query("SELECT job, position, state, exit_code, started_at, finished_at FROM coordinator.steps WHERE run_id = $1 ORDER BY job, position", [runId]),
    db.pool.query(
      "SELECT id, status, attempt, agent_id, cancel_requested, started, handbacks, lease_expires_at FROM coordinator.tasks WHERE run_id = $1 ORDER BY job",
      [runId],
    ),
    db.pool.query("SELECT kind, name, attempt, lease_expires_at FROM coordinator.reservations WHERE run_id = $1 ORDER BY id", [runId]),
    db.pool.query("SELECT job, attempt, agent_id FROM auth.live_attempts WHERE run_id = $1 ORDER BY job, attempt", [runId]),
    journalLines(db, runId),
  ]);
  return { run: run.rows, jobs: jobs.rows, steps: steps.rows, tasks: tasks.rows, reservations: reservations.rows, live: live.rows, journal: lines };
}

// Notifications on `channel` from now on, for as long as the listener lives.
export async function listen(db: EngineDb, channel: string) {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  const received: string[] = [];
  client.on("notification", (n) => received.push(n.payload ?? ""));
  await client.query(`LISTEN ${channel}`);
  return {
    received,
    // Waits until `count` notifications came, or fails after `timeoutMs`.
    async atLeast(count: number, timeoutMs = 5_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (received.length < count) {
        assert.ok(Date.now() < deadline, `${count} notifications on ${channel}, got ${received.length}`);
        // A round trip on the listening connection delivers what is pending.
        await client.query("SELECT 1");
      }
    },
    stop: () => client.end(),
  };
}

// A job, with its task and steps, as an attempt in `state` leaves them (the
// run is RUNNING from the first job that ran).
export async function putJobIn(db: EngineDb, runId: string, job: string, state: RunState): Promise<void> {
  const final = state !== RunState.RUNNING;
  await db.pool.query(
    `WITH j AS (UPDATE coordinator.jobs SET state = $3, started_at = now(), finished_at = CASE WHEN $4 THEN now() END WHERE run_id = $1 AND name = $2 RETURNING 1),
       s AS (UPDATE coordinator.steps SET state = $5 WHERE run_id = $1 AND job = $2),
       r AS (UPDATE coordinator.runs SET state = ${RunState.RUNNING}, started_at = now() WHERE id = $1 AND state = ${RunState.QUEUED}),
       t AS (UPDATE coordinator.tasks SET status = CASE WHEN $4 THEN 'done' ELSE 'assigned' END, attempt = 1, agent_id = 'agent-1'
             WHERE run_id = $1 AND job = $2 RETURNING 1)
     SELECT (SELECT count(*) FROM j) AS jobs, (SELECT count(*) FROM t) AS tasks`,
    [runId, job, state, final, final ? state : RunState.RUNNING],
  );
}
