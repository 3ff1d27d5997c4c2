import { commitWith, type PoolClient } from "@otto/kit/db";
import { finalStates, RunState } from "./states.ts";
import { IllegalTransitionError, isLegal, stateName, transitions, type Entity, type TaskStatus } from "./transitions.ts";

export const journalChannel = "otto_journal";
export const tasksChannel = "otto_tasks";
// A project's run ended: a commit status is owed to its forge (commit-statuses.ts).
export const statusChannel = "otto_statuses";

// An agent's hold on a task, given with the move to "assigned": the
// attempt's slot on the agent is reserved with it (with the job's cpu and
// memory), and released when the task leaves "assigned".
export interface Assignment {
  attempt: number;
  agentId: string;
  slot: number;
  incarnation: string;
  leaseMs: number;
  cpu?: number;
  memoryBytes?: bigint;
}

export type Change =
  | { entity: "run"; from: RunState; to: RunState; message?: string }
  // `message` is also the job's message, shown with its state.
  | { entity: "job"; job: string; from: RunState; to: RunState; message?: string; agentId?: string }
  // `atMs`: when it happened by the agent's clock, in milliseconds since the
  // epoch (else when it is written).
  | { entity: "step"; job: string; position: number; name: string; from: RunState; to: RunState; exitCode?: number | null; atMs?: number; message?: string }
  | { entity: "task"; taskId: string; job: string; from: TaskStatus; to: TaskStatus; assignment?: Assignment; handback?: boolean }
  // A journal entry that changes no state ("cancel requested", "lease expired").
  | { entity: "note"; job?: string; state: RunState; message: string }
  // A job's task comes to be, in the state tasks begin in, for agents with `labels`.
  | { entity: "new task"; job: string; labels: string[] };

interface StepRow {
  job: string;
  position: number;
  from: RunState;
  to: RunState;
  exitCode: number | null;
  start: boolean;
  startedAt: number | null;
  finishedAt: number | null;
  change: Change & { entity: "step" };
}

const { QUEUED, RUNNING, SUCCEEDED, FAILED, WAITING } = RunState;
const finals = finalStates.join(", ");

// The one write path of the engine's state. Applies `changes` (all of one
// run, whose row the caller has locked) in the caller's transaction, in one
// statement: every move is checked against the transition table first, and
// against the state the row really has, then the rows are written and each
// change is appended to the run's journal, in the order given. Several
// changes of one entity chain (a step's RUNNING and SUCCEEDED in one
// report). Task moves carry their side effects: an assigned attempt's task
// token is live, and its slot on the agent reserved (the claim reserves the
// job's locks), until the task leaves "assigned", when all it held is
// released; a task that is made or becomes pending, or a lock, cpu or
// memory released while a task waits, wake the agents waiting for work.
// `last`: nothing follows in the transaction, which commits with this
// statement (in the same round trip).
export async function applyChanges(client: PoolClient, runId: string, changes: Change[], options: { last?: boolean } = {}): Promise<void> {
  if (changes.length === 0) return;
  const latest = new Map<string, Change>();
  const runMoves: (Change & { entity: "run" })[] = [];
  const jobs = new Map<string, { from: RunState; to: RunState; message: string | null; agentId: string | null; change: Change }>();
  const steps = new Map<string, StepRow>();
  const tasks = new Map<string, { from: TaskStatus; to: TaskStatus; assignment?: Assignment; handback: boolean; change: Change }>();
  // runState: the run's state as of the entry; null: as before the statement.
  const journal: { job: string; step: string; state: RunState; exitCode: number | null; message: string; runState: RunState | null }[] = [];
  let runState: RunState | null = null;
  const newTasks: { job: string; labels: string[] }[] = [];
  for (const change of changes) {
    if (change.entity === "note") {
      journal.push({ job: change.job ?? "", step: "", state: change.state, exitCode: null, message: change.message, runState });
      continue;
    }
    if (change.entity === "new task") {
      newTasks.push({ job: change.job, labels: change.labels });
      continue;
    }
    const key = keyOf(change);
    const previous = latest.get(key) as typeof change | undefined;
    if (previous && previous.to !== change.from) {
      throw new IllegalTransitionError(describe(change), change.from, change.to, `the change before it in the same batch left it ${stateName(previous.to)}`);
    }
    if (!isLegal(change.entity, change.from, change.to)) throw new IllegalTransitionError(describe(change), change.from, change.to);
    latest.set(key, change);
    switch (change.entity) {
      case "run":
        runMoves.push(change);
        runState = change.to;
        journal.push({ job: "", step: "", state: change.to, exitCode: null, message: change.message ?? "", runState });
        break;
      case "job": {
        const row = jobs.get(change.job);
        jobs.set(change.job, {
          from: row?.from ?? change.from,
          to: change.to,
          message: change.message ?? row?.message ?? null,
          agentId: change.agentId ?? (change.to === QUEUED ? "" : (row?.agentId ?? null)),
          change: row?.change ?? change,
        });
        journal.push({ job: change.job, step: "", state: change.to, exitCode: null, message: change.message ?? "" , runState });
        break;
      }
      case "step": {
        const row = steps.get(key);
        const ran = change.to === RUNNING || (change.from === QUEUED && (change.to === SUCCEEDED || change.to === FAILED));
        const at = change.atMs ?? null;
        steps.set(key, {
          job: change.job,
          position: change.position,
          from: row?.from ?? change.from,
          to: change.to,
          exitCode: change.to === RUNNING || change.to === QUEUED ? null : (change.exitCode ?? null),
          start: change.to === QUEUED ? false : ran || (row?.start ?? false),
          startedAt: change.to === QUEUED ? null : ran ? at : (row?.startedAt ?? null),
          finishedAt: change.to === RUNNING || change.to === QUEUED ? null : at,
          change: row?.change ?? change,
        });
        journal.push({ job: change.job, step: change.name, state: change.to, exitCode: change.exitCode ?? null, message: change.message ?? "" , runState });
        break;
      }
      case "task": {
        const row = tasks.get(change.taskId);
        tasks.set(change.taskId, {
          from: row?.from ?? change.from,
          to: change.to,
          assignment: change.assignment ?? row?.assignment,
          handback: (row?.handback ?? false) || (change.handback ?? false),
          change: row?.change ?? change,
        });
        if (change.to === "assigned" && !change.assignment) {
          throw new IllegalTransitionError(describe(change), change.from, change.to, "an assignment names its agent and attempt");
        }
        break;
      }
    }
  }
  const lastMove = runMoves.at(-1);
  const run = lastMove ? { from: runMoves[0].from, to: lastMove.to, message: lastMove.message } : undefined;
  const jobRows = [...jobs.entries()];
  const stepRows = [...steps.values()];
  const taskRows = [...tasks.entries()];
  const send = options.last ? commitWith : (c: PoolClient, text: string, values: unknown[]) => c.query(text, values);
  const mismatches = await send(client, applySql, [
    runId,
    journal.length,
    run?.to ?? null,
    run?.from ?? null,
    jobRows.map(([name]) => name),
    jobRows.map(([, j]) => j.from),
    jobRows.map(([, j]) => j.to),
    jobRows.map(([, j]) => j.message),
    jobRows.map(([, j]) => j.agentId),
    stepRows.map((s) => s.job),
    stepRows.map((s) => s.position),
    stepRows.map((s) => s.from),
    stepRows.map((s) => s.to),
    stepRows.map((s) => s.exitCode),
    stepRows.map((s) => s.start),
    stepRows.map((s) => s.startedAt),
    stepRows.map((s) => s.finishedAt),
    taskRows.map(([id]) => id),
    taskRows.map(([, t]) => t.from),
    taskRows.map(([, t]) => t.to),
    taskRows.map(([, t]) => t.assignment?.attempt ?? null),
    taskRows.map(([, t]) => t.assignment?.agentId ?? null),
    taskRows.map(([, t]) => t.assignment?.slot ?? null),
    taskRows.map(([, t]) => t.assignment?.incarnation ?? null),
    taskRows.map(([, t]) => t.assignment?.leaseMs ?? null),
    taskRows.map(([, t]) => t.handback),
    journal.map((e) => e.job),
    journal.map((e) => e.step),
    journal.map((e) => e.state),
    journal.map((e) => e.exitCode),
    journal.map((e) => e.message),
    journalChannel,
    tasksChannel,
    taskRows.map(([, t]) => t.assignment?.cpu ?? 0),
    taskRows.map(([, t]) => String(t.assignment?.memoryBytes ?? 0n)),
    JSON.stringify(newTasks),
    run?.message ?? null,
    journal.map((e) => e.runState),
  ]).then(
    () => undefined,
    (err) => {
      if ((err as { code?: string }).code !== "P0001" || (err as Error).message !== refusal) throw err;
      return JSON.parse((err as { detail: string }).detail) as { entity: Entity; n: string; found: string | null }[];
    },
  );
  const mismatch = mismatches?.[0];
  if (mismatch) {
    const index = Number(mismatch.n) - 1;
    const planned =
      mismatch.entity === "run" ? { change: runMoves[0], from: run!.from } :
      mismatch.entity === "job" ? jobRows[index][1] :
      mismatch.entity === "step" ? stepRows[index] :
      taskRows[index][1];
    const found = mismatch.found === null ? undefined : mismatch.entity === "task" ? (mismatch.found as TaskStatus) : (Number(mismatch.found) as RunState);
    const why = found === undefined ? "it does not exist" : `its writer read it as ${stateName(planned.from)}, but it is not`;
    throw new IllegalTransitionError(describe(planned.change), found, (planned.change as { to: RunState | TaskStatus }).to, why);
  }
}

function keyOf(change: Exclude<Change, { entity: "note" | "new task" }>): string {
  switch (change.entity) {
    case "run":
      return "run";
    case "job":
      return `job:${change.job}`;
    case "step":
      return `step:${change.job}:${change.position}`;
    case "task":
      return `task:${change.taskId}`;
  }
}

function describe(change: Change): string {
  switch (change.entity) {
    case "run":
      return "the run";
    case "job":
      return `job "${change.job}"`;
    case "step":
      return `step ${change.position} ("${change.name}") of job "${change.job}"`;
    case "task":
      return `the task of job "${change.job}"`;
    default:
      return "the journal";
  }
}

// What coordinator.refuse_changes raises (migrations.ts), the mismatches as its detail.
const refusal = "otto: illegal state change";

// Parameters: $1 run, $2 journal entries, $3/$4 the run's new/expected
// state, $5-$9 jobs, $10-$17 steps, $18-$26 and $34/$35 tasks, $36 new
// tasks, $27-$31 and $38 journal, $32/$33 notification channels, $37 the
// run's message. The WITH's plain reads see the rows as they were before the
// statement, so `mismatches` names every change whose row was not in its
// expected state.
const applySql = `
WITH run AS (
  UPDATE coordinator.runs r SET last_seq = r.last_seq + $2,
    state = coalesce($3::smallint, r.state),
    message = CASE WHEN $3::smallint IS NOT NULL THEN coalesce($37::text, r.message) ELSE r.message END,
    started_at = CASE WHEN $3::smallint = ${RUNNING} THEN now() ELSE r.started_at END,
    finished_at = CASE WHEN $3::smallint IN (${finals}) THEN now() ELSE r.finished_at END
  WHERE r.id = $1 AND ($3::smallint IS NULL OR r.state = $4::smallint) AND ($2 > 0 OR $3::smallint IS NOT NULL)
  RETURNING r.last_seq - $2 AS first_seq, r.watchers
), job_change AS (
  SELECT * FROM unnest($5::text[], $6::smallint[], $7::smallint[], $8::text[], $9::text[]) WITH ORDINALITY
    AS c(name, from_state, to_state, message, agent_id, n)
), job AS (
  UPDATE coordinator.jobs j SET state = c.to_state, message = coalesce(c.message, j.message), agent_id = coalesce(c.agent_id, j.agent_id),
    started_at = CASE WHEN c.to_state = ${RUNNING} THEN now() WHEN c.to_state = ${QUEUED} THEN NULL ELSE j.started_at END,
    finished_at = CASE WHEN c.to_state IN (${finals}) THEN now() ELSE NULL END,
    waiting_until = CASE WHEN c.to_state = ${WAITING} THEN now() + make_interval(secs => j.approval_timeout_ms / 1000.0) END
  FROM job_change c
  WHERE j.run_id = $1 AND j.name = c.name AND j.state = c.from_state
), step_change AS (
  SELECT * FROM unnest($10::text[], $11::int[], $12::smallint[], $13::smallint[], $14::int[], $15::bool[], $16::float8[], $17::float8[])
    WITH ORDINALITY AS c(job, position, from_state, to_state, exit_code, start, started_ms, finished_ms, n)
), step AS (
  UPDATE coordinator.steps s SET state = c.to_state, exit_code = c.exit_code,
    started_at = CASE WHEN c.to_state = ${QUEUED} THEN NULL WHEN c.start THEN t.started_at ELSE s.started_at END,
    finished_at = CASE WHEN c.to_state IN (${finals}) THEN t.finished_at ELSE NULL END
  FROM step_change c
    JOIN coordinator.jobs j ON j.run_id = $1 AND j.name = c.job
    -- The agent's clock, kept between the attempt's claim and now (as
    -- numbers, so no value an agent sends can fail the statement): a wrong
    -- clock cannot put a step outside its job or in the future.
    CROSS JOIN LATERAL (
      SELECT to_timestamp(least(greatest(coalesce(c.started_ms, now_ms), claim_ms), now_ms) / 1000) AS started_at,
        to_timestamp(least(greatest(coalesce(c.finished_ms, now_ms), claim_ms), now_ms) / 1000) AS finished_at
      FROM (SELECT extract(epoch FROM now()) * 1000 AS now_ms, coalesce(extract(epoch FROM j.started_at) * 1000, 0) AS claim_ms) AS bounds
    ) AS t
  WHERE s.run_id = $1 AND s.job = c.job AND s.position = c.position AND s.state = c.from_state
  RETURNING s.job, c.start
), task_change AS (
  SELECT * FROM unnest($18::uuid[], $19::text[], $20::text[], $21::int[], $22::text[], $23::int[], $24::text[], $25::float8[], $26::bool[])
    WITH ORDINALITY AS c(id, from_status, to_status, attempt, agent_id, slot, incarnation, lease_ms, handback, n)
), task AS (
  UPDATE coordinator.tasks t SET status = c.to_status,
    attempt = coalesce(c.attempt, t.attempt),
    agent_id = CASE c.to_status WHEN 'assigned' THEN c.agent_id WHEN 'pending' THEN '' ELSE t.agent_id END,
    agent_slot = CASE WHEN c.to_status = 'assigned' THEN c.slot ELSE t.agent_slot END,
    agent_incarnation = CASE WHEN c.to_status = 'assigned' THEN c.incarnation ELSE t.agent_incarnation END,
    started = CASE WHEN c.to_status = 'done' THEN t.started ELSE false END,
    lease_expires_at = CASE WHEN c.to_status = 'assigned' THEN now() + make_interval(secs => c.lease_ms / 1000) END,
    pending_since = CASE WHEN c.to_status = 'pending' THEN now() ELSE t.pending_since END,
    handbacks = t.handbacks + CASE WHEN c.handback THEN 1 ELSE 0 END
  FROM task_change c
  WHERE t.id = c.id AND t.run_id = $1 AND t.status = c.from_status
  RETURNING t.id, t.run_id, t.job, t.attempt, t.agent_id, t.status, t.labels
), new_task AS (
  INSERT INTO coordinator.tasks (id, run_id, job, labels, status)
  SELECT gen_random_uuid(), $1, c.job, c.labels, '${transitions.task.initial}' FROM jsonb_to_recordset($36) AS c(job text, labels text[])
  RETURNING labels
), reserved AS (
  INSERT INTO coordinator.reservations (run_id, job, task_id, attempt, kind, name, cpu, memory_bytes, lease_expires_at)
  SELECT task.run_id, task.job, task.id, task.attempt, 'slot', task.agent_id, c.cpu, c.memory_bytes, now() + make_interval(secs => c.lease_ms / 1000)
  FROM task JOIN (SELECT * FROM unnest($18::uuid[], $34::float8[], $35::bigint[], $25::float8[]) AS r(id, cpu, memory_bytes, lease_ms)) c ON c.id = task.id
  WHERE task.status = 'assigned'
), released AS (
  DELETE FROM coordinator.reservations r USING task WHERE task.status <> 'assigned' AND r.task_id = task.id RETURNING r.kind, r.cpu, r.memory_bytes
), task_started AS (
  UPDATE coordinator.tasks t SET started = true
  WHERE t.run_id = $1 AND t.job IN (SELECT job FROM step WHERE start) AND t.status = 'assigned' AND NOT t.started
    AND NOT (t.id = ANY($18::uuid[]))
), live_start AS (
  INSERT INTO auth.live_attempts (run_id, job, attempt, agent_id) SELECT run_id, job, attempt, agent_id FROM task WHERE status = 'assigned'
  ON CONFLICT (run_id, job, attempt) DO UPDATE SET agent_id = EXCLUDED.agent_id
), live_end AS (
  DELETE FROM auth.live_attempts l USING task WHERE task.status <> 'assigned' AND l.run_id = task.run_id AND l.job = task.job
), journal AS (
  -- xid: the writing transaction's (the column's default; journal-feed.ts).
  INSERT INTO coordinator.journal (run_id, seq, job, step, state, exit_code, message, run_state)
  SELECT $1, run.first_seq + e.n, e.job, e.step, e.state, e.exit_code, e.message,
    coalesce(e.run_state, (SELECT state FROM coordinator.runs WHERE id = $1))
  FROM run, unnest($27::text[], $28::text[], $29::smallint[], $30::int[], $31::text[], $38::smallint[])
    WITH ORDINALITY AS e(job, step, state, exit_code, message, run_state, n)
), commit_status AS (
  -- A project's run that ends owes its forge a status, when the project
  -- names a forge and a token to send it with.
  INSERT INTO coordinator.commit_statuses (run_id, project, sha, context, state, description)
  SELECT r.id, r.project, r.source->>'sha', 'otto/' || r.name,
    CASE $3::smallint WHEN ${SUCCEEDED} THEN 'success' WHEN ${FAILED} THEN 'failure' ELSE 'error' END, coalesce($37::text, '')
  FROM coordinator.runs r JOIN coordinator.projects p ON p.name = r.project AND p.forge_kind <> '' AND p.forge_token_secret <> ''
  WHERE r.id = $1 AND $3::smallint IN (${finals}) AND r.source IS NOT NULL
  RETURNING id
), mismatches AS (
  SELECT 'run' AS entity, 1::bigint AS n, r.state::text AS found
    FROM (SELECT 1) one LEFT JOIN coordinator.runs r ON r.id = $1
    WHERE $3::smallint IS NOT NULL AND r.state IS DISTINCT FROM $4::smallint
  UNION ALL
  SELECT 'job', c.n, j.state::text FROM job_change c LEFT JOIN coordinator.jobs j ON j.run_id = $1 AND j.name = c.name
    WHERE j.state IS DISTINCT FROM c.from_state
  UNION ALL
  SELECT 'step', c.n, s.state::text FROM step_change c LEFT JOIN coordinator.steps s ON s.run_id = $1 AND s.job = c.job AND s.position = c.position
    WHERE s.state IS DISTINCT FROM c.from_state
  UNION ALL
  SELECT 'task', c.n, t.status FROM task_change c LEFT JOIN coordinator.tasks t ON t.id = c.id AND t.run_id = $1
    WHERE t.status IS DISTINCT FROM c.from_status
)
-- A change whose row was not as its writer read it fails the whole
-- statement (and the transaction, and a COMMIT sent with it).
SELECT CASE WHEN EXISTS (SELECT 1 FROM mismatches) THEN coordinator.refuse_changes((SELECT json_agg(m) FROM mismatches m)) END AS refused,
  -- Only for runs someone watches, or while a stream follows every run
  -- (journal-followers.ts): every NOTIFY wakes every listening session,
  -- whatever its channels.
  CASE WHEN $2 > 0 AND ((SELECT watchers FROM run) > 0 OR EXISTS (SELECT 1 FROM coordinator.journal_followers WHERE expires_at > now()))
    THEN pg_notify($32, $1::text) END AS journal_notified,
  CASE WHEN EXISTS (SELECT 1 FROM commit_status) THEN pg_notify('${statusChannel}', '') END AS status_notified,
  -- Agents that could take a task now: those with its labels, or any for
  -- a lock, cpu or memory freed while tasks wait (""). A freed slot wakes
  -- nobody: the agent's slot asks for its next task as it reports the end.
  (SELECT count(pg_notify($33, wake.labels)) FROM (
     SELECT DISTINCT to_json(labels)::text AS labels FROM task WHERE status = 'pending'
     UNION
     SELECT DISTINCT to_json(labels)::text FROM new_task
     UNION
     SELECT '' WHERE EXISTS (SELECT 1 FROM released WHERE kind = 'lock' OR cpu > 0 OR memory_bytes > 0)
       AND EXISTS (SELECT 1 FROM coordinator.tasks WHERE status = 'pending')
   ) wake) AS tasks_notified`;
