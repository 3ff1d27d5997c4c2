import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import type { PoolClient } from "../../kit/src/db.ts";
import { advanceRun, tasksChannel } from "./advance-run.ts";
import { appendJournal, type JournalEntry } from "./journal.ts";
import { describeReservations, hasFreeSlot, releaseTaskReservations, reserveAll, type AgentCapacity, type AgentUsage } from "./reservations.ts";
import { shouldRetry, type FailureCause } from "./retry-policy.ts";
import { enqueueAdvance } from "./run-queue.ts";
import { isFinal, RunState } from "./states.ts";
import { endLiveAttempts, recordLiveAttempts } from "../../kit/src/live-attempts.ts";

export interface TaskRef {
  taskId: string;
  attempt: number;
  agentId?: string;
  // The authenticated agent making the call: another agent's task is refused.
  caller?: string;
}

export interface ClaimedTask {
  id: string;
  run_id: string;
  job: string;
  attempt: number;
  // What was reserved for it, for the dispatch span: "slot on a1, lock prod".
  reserved?: string;
  // Seconds it waited, ready to run, until everything it needs was reserved.
  waited?: number;
}

export interface Claimant extends AgentCapacity {
  labels: string[];
  runningTaskIds: string[];
  slot: number;
  incarnation: string;
}

export interface ClaimResult {
  task?: ClaimedTask;
  // A candidate was passed over because another transaction held its run:
  // worth trying again soon rather than waiting for the next notification.
  contended: boolean;
}

// Hands an agent a task: first one already assigned to the asking process
// and slot whose answer was lost (assigned, never started, not among the
// tasks it says it runs or has finished), else the oldest pending task whose
// labels it has and whose slot, resources and locks can all be reserved now.
// Each candidate is found and locked (its run and task rows) by one
// statement that skips runs other transactions hold, so a claim never waits
// on a run; a candidate that does not fit gives back any lock reservation it
// took at once.
export async function claimTask(client: PoolClient, agent: Claimant, leaseMs: number): Promise<ClaimResult> {
  // One claim per agent at a time, so its slots are counted correctly.
  await client.query("SELECT pg_advisory_xact_lock(hashtext('otto-agent:' || $1))", [agent.id]);
  let contended = false;
  const { rows: found } = await client.query(
    `SELECT
       (SELECT json_agg(lost) FROM (
          SELECT id, run_id, job, attempt FROM coordinator.tasks
          WHERE status = 'assigned' AND agent_id = $1 AND agent_slot = $3 AND agent_incarnation = $4 AND NOT started
            AND NOT (id::text = ANY($2::text[])) LIMIT 1) lost) AS lost,
       count(*)::int AS slots, coalesce(sum(cpu), 0)::float8 AS cpu, coalesce(sum(memory_bytes), 0)::bigint AS memory
     FROM coordinator.reservations WHERE kind = 'slot' AND name = $1`,
    [agent.id, agent.runningTaskIds, agent.slot, agent.incarnation],
  );
  for (const task of (found[0].lost ?? []) as ClaimedTask[]) {
    const { rowCount } = await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE SKIP LOCKED", [task.run_id]);
    if (!rowCount) {
      contended = true;
      continue;
    }
    const { rows } = await client.query<ClaimedTask>(
      `UPDATE coordinator.tasks SET lease_expires_at = now() + make_interval(secs => $3::float / 1000)
       WHERE id = $1 AND attempt = $2 AND status = 'assigned' AND NOT started RETURNING id, run_id, job, attempt`,
      [task.id, task.attempt, leaseMs],
    );
    if (rows.length > 0) return { task: rows[0], contended };
  }
  // What the agent's slot reservations take up now.
  const used: AgentUsage = { slots: found[0].slots, cpu: found[0].cpu, memory: BigInt(found[0].memory) };
  if (!hasFreeSlot(agent, used)) return { contended };
  const passedOver: string[] = [];
  for (let tries = 0; tries < 20; tries++) {
    const { rows } = await client.query(
      `SELECT t.id, t.run_id, t.job, t.attempt, j.locks, j.cpu, j.memory_bytes,
         extract(epoch FROM now() - t.pending_since)::float8 AS waited
       FROM coordinator.tasks t
         JOIN coordinator.jobs j ON j.run_id = t.run_id AND j.name = t.job
         JOIN coordinator.runs r ON r.id = t.run_id
       WHERE t.status = 'pending' AND t.labels <@ $1::text[] AND NOT (t.id = ANY($2::uuid[]))
       ORDER BY t.created_at LIMIT 1
       FOR UPDATE OF r, t SKIP LOCKED`,
      [agent.labels, passedOver],
    );
    if (rows.length === 0) break;
    const task = await claimCandidate(client, agent, used, rows[0], leaseMs);
    if (task) return { task, contended };
    passedOver.push(rows[0].id);
  }
  // Pending tasks left that this agent could take were skipped because their
  // runs were busy: worth trying again soon.
  const { rows } = await client.query(
    `SELECT EXISTS (SELECT 1 FROM coordinator.tasks WHERE status = 'pending' AND labels <@ $1::text[] AND NOT (id = ANY($2::uuid[]))) AS waiting`,
    [agent.labels, passedOver],
  );
  return { contended: contended || rows[0].waiting };
}

async function claimCandidate(
  client: PoolClient,
  agent: Claimant,
  used: AgentUsage,
  candidate: { id: string; run_id: string; job: string; attempt: number; locks: string[]; cpu: number; memory_bytes: string; waited: number },
  leaseMs: number,
): Promise<ClaimedTask | undefined> {
  const attempt = candidate.attempt + 1;
  const needs = { locks: candidate.locks, cpu: candidate.cpu, memoryBytes: BigInt(candidate.memory_bytes) };
  const target = { runId: candidate.run_id, job: candidate.job, taskId: candidate.id, attempt, leaseMs };
  if (!(await reserveAll(client, agent, used, needs, target))) return undefined;
  const { rows: claimed } = await client.query<ClaimedTask & { run_started: boolean }>(
    `WITH task AS (
       UPDATE coordinator.tasks SET status = 'assigned', attempt = $2, agent_id = $3, agent_slot = $5, agent_incarnation = $6,
         started = false, lease_expires_at = now() + make_interval(secs => $4::float / 1000)
       WHERE id = $1 RETURNING id, run_id, job, attempt
     ), job AS (
       UPDATE coordinator.jobs j SET state = $7, agent_id = $3, started_at = now(), message = ''
       FROM task WHERE j.run_id = task.run_id AND j.name = task.job
     ), live AS (${recordLiveAttempts("task", "$3")}
     ), run AS (
       UPDATE coordinator.runs r SET state = $7, started_at = now() FROM task WHERE r.id = task.run_id AND r.state = $8 RETURNING r.id
     )
     SELECT task.*, EXISTS (SELECT 1 FROM run) AS run_started FROM task`,
    [candidate.id, attempt, agent.id, leaseMs, agent.slot, agent.incarnation, RunState.RUNNING, RunState.QUEUED],
  );
  const { run_started: runStarted, ...task } = claimed[0];
  const holds = needs.locks.length > 0 ? `; holds ${needs.locks.map((l: string) => `lock ${l}`).join(", ")}` : "";
  await appendJournal(
    client,
    task.run_id,
    ...(runStarted ? [{ state: RunState.RUNNING }] : []),
    { job: task.job, state: RunState.RUNNING, message: `attempt ${task.attempt} on agent ${agent.id}${holds}` },
  );
  task.waited = candidate.waited;
  task.reserved = describeReservations([{ kind: "slot", name: agent.id }, ...needs.locks.map((name: string) => ({ kind: "lock", name }))]);
  return task;
}

// Locks the task's run and checks that the caller holds the current attempt.
export async function lockCurrentAttempt(client: PoolClient, ref: TaskRef) {
  const { rowCount } = await client.query(
    "SELECT 1 FROM coordinator.runs WHERE id = (SELECT run_id FROM coordinator.tasks WHERE id = $1) FOR UPDATE",
    [ref.taskId],
  );
  if (!rowCount) throw new ConnectError(`task ${ref.taskId} not found`, Code.NotFound);
  const { rows: tasks } = await client.query("SELECT * FROM coordinator.tasks WHERE id = $1", [ref.taskId]);
  const task = tasks[0];
  refuseOthersTask(ref.taskId, task, ref.attempt, ref.caller);
  if (task.status !== "assigned" || task.attempt !== ref.attempt || (ref.agentId && task.agent_id !== ref.agentId)) {
    throw new ConnectError(
      `attempt ${ref.attempt} of task ${ref.taskId} is no longer current (task is ${task.status}, attempt ${task.attempt})`,
      Code.FailedPrecondition,
    );
  }
  return task as { id: string; run_id: string; job: string; attempt: number; cancel_requested: boolean; agent_id: string };
}

// The current attempt of a task belongs to its agent: another agent asking
// about it is refused (a stale attempt is for the caller to sort out).
export function refuseOthersTask(taskId: string, task: { attempt: number; agent_id: string }, attempt: number, caller: string | undefined): void {
  if (caller !== undefined && task.attempt === attempt && task.agent_id !== caller) {
    throw new ConnectError(`task ${taskId} is not assigned to agent ${caller}`, Code.PermissionDenied);
  }
}

export interface StepChange {
  stepIndex: number;
  state: RunState;
  exitCode?: number;
  // When the step reached the state by the agent's clock, in ms since the
  // epoch; absent: when the change is applied.
  atMs?: number;
}

// Applies an attempt's step changes in order, under the run lock its caller
// holds, and returns the journal entries they make (for the caller to append,
// with whatever else its transaction journals). Steps only move forward
// (queued, running, final), so a batch sent again after a lost answer changes
// nothing the second time.
export async function applyStepChanges(
  client: PoolClient,
  task: { id: string; run_id: string; job: string },
  changes: StepChange[],
): Promise<JournalEntry[]> {
  if (changes.length === 0) return [];
  const { rows } = await client.query<{ name: string; position: number; state: RunState }>(
    "SELECT name, position, state FROM coordinator.steps WHERE run_id = $1 AND job = $2",
    [task.run_id, task.job],
  );
  const steps = new Map(
    rows.map((row) => [row.position, { ...row, exitCode: null as number | null, started: false, touched: false, startedMs: null as number | null, finishedMs: null as number | null }]),
  );
  const entries: JournalEntry[] = [];
  for (const change of changes) {
    const step = steps.get(change.stepIndex);
    if (!step) throw new ConnectError(`job ${task.job} has no step ${change.stepIndex}`, Code.InvalidArgument);
    if (change.state === RunState.RUNNING ? step.state !== RunState.QUEUED : isFinal(step.state)) continue;
    step.state = change.state;
    step.touched = true;
    if (change.state === RunState.RUNNING) {
      step.started = true;
      step.startedMs = change.atMs ?? null;
    } else {
      step.exitCode = change.exitCode ?? null;
      step.finishedMs = change.atMs ?? null;
    }
    entries.push({ job: task.job, step: step.name, state: change.state, exitCode: change.exitCode });
  }
  const touched = [...steps.values()].filter((step) => step.touched);
  if (touched.length === 0) return [];
  await client.query(
    `WITH started AS (
       UPDATE coordinator.tasks SET started = true WHERE id = $8 AND $9 AND NOT started
     )
     UPDATE coordinator.steps s SET state = c.state, exit_code = c.exit_code,
       started_at = CASE WHEN c.started THEN t.started_at ELSE coalesce(s.started_at, t.finished_at) END,
       finished_at = CASE WHEN c.state = $7 THEN NULL ELSE t.finished_at END
     FROM unnest($3::int[], $4::smallint[], $5::int[], $6::bool[], $10::float8[], $11::float8[])
         AS c(position, state, exit_code, started, started_ms, finished_ms)
       JOIN coordinator.jobs j ON j.run_id = $1 AND j.name = $2
       -- The agent's clock, kept between the attempt's claim and now: a wrong
       -- clock cannot put a step outside its job or in the future.
       CROSS JOIN LATERAL (
         SELECT to_timestamp(least(greatest(coalesce(c.started_ms, now_ms), claim_ms), now_ms) / 1000) AS started_at,
                to_timestamp(least(greatest(coalesce(c.finished_ms, now_ms), claim_ms), now_ms) / 1000) AS finished_at
         FROM (SELECT extract(epoch FROM now()) * 1000 AS now_ms, extract(epoch FROM j.started_at) * 1000 AS claim_ms) AS bounds
       ) AS t
     WHERE s.run_id = $1 AND s.job = $2 AND s.position = c.position`,
    [
      task.run_id,
      task.job,
      touched.map((step) => step.position),
      touched.map((step) => step.state),
      touched.map((step) => step.exitCode),
      touched.map((step) => step.started),
      RunState.RUNNING,
      task.id,
      touched.some((step) => step.started),
      touched.map((step) => step.startedMs),
      touched.map((step) => step.finishedMs),
    ],
  );
  return entries;
}

export interface FinishOptions {
  cause?: FailureCause;
  // An agent's answer moves the run on in its own transaction, which holds
  // the run's lock; work found by a coordinator (expired leases) goes
  // through the shard's queue.
  advance?: "inline" | "queued";
  // Journal entries of the same transaction not appended yet (the attempt's
  // last step changes), appended with the job's end.
  earlier?: JournalEntry[];
}

// Ends a task's current attempt and releases everything reserved for it
// (its task token writes no more).
// A failure that the job's retry policy covers puts the job back in the
// queue for a new attempt; otherwise the job takes `state`, its unfinished
// steps are closed, and the run advances.
export async function finishTask(
  client: PoolClient,
  boss: PgBoss,
  task: { id: string; run_id: string; job: string; attempt: number; cancel_requested?: boolean },
  state: RunState,
  message: string,
  { cause = { agentLost: false }, advance = "inline", earlier = [] }: FinishOptions = {},
): Promise<void> {
  if (!isFinal(state)) throw new ConnectError("a task can only complete in a final state", Code.InvalidArgument);
  const released = await releaseTaskReservations(client, task.id);
  const mayRetry = state === RunState.FAILED && !task.cancel_requested;
  if (earlier.length > 0 && (mayRetry || (cause.agentLost && released.length > 0))) {
    await appendJournal(client, task.run_id, ...earlier);
    earlier = [];
  }
  if (cause.agentLost && released.length > 0) {
    await appendJournal(client, task.run_id, {
      job: task.job,
      state: RunState.RUNNING,
      message: `lease of attempt ${task.attempt} expired; released ${describeReservations(released)}`,
    });
  }
  if (mayRetry && (await retryIfAllowed(client, task, message, cause))) return;
  const { rows: steps } = await client.query(
    `WITH task AS (
       UPDATE coordinator.tasks SET status = 'done', lease_expires_at = NULL WHERE id = $7
     ), live AS (${endLiveAttempts("$1", "$2")}
     ), job AS (
       UPDATE coordinator.jobs SET state = $8, message = $9, finished_at = now() WHERE run_id = $1 AND name = $2
     )
     UPDATE coordinator.steps SET state = CASE WHEN state = $3 THEN $4::smallint ELSE $5::smallint END, finished_at = now()
     WHERE run_id = $1 AND job = $2 AND state IN ($3, $6) RETURNING name, position, state`,
    [
      task.run_id,
      task.job,
      RunState.RUNNING,
      state === RunState.SUCCEEDED ? RunState.FAILED : state,
      RunState.CANCELED,
      RunState.QUEUED,
      task.id,
      state,
      message,
    ],
  );
  await appendJournal(
    client,
    task.run_id,
    ...earlier,
    { job: task.job, state, message },
    ...steps.sort((a, b) => a.position - b.position).map((step) => ({ job: task.job, step: step.name, state: step.state })),
  );
  if (advance === "inline") await advanceRun(client, task.run_id, { runLocked: true });
  else await enqueueAdvance(boss, client, task.run_id);
}

async function retryIfAllowed(
  client: PoolClient,
  task: { id: string; run_id: string; job: string; attempt: number },
  message: string,
  cause: FailureCause,
): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT j.retry_max, j.retry_exit_codes, j.retry_agent_lost, t.handbacks
     FROM coordinator.jobs j JOIN coordinator.tasks t ON t.run_id = j.run_id AND t.job = j.name
     WHERE j.run_id = $1 AND j.name = $2`,
    [task.run_id, task.job],
  );
  const policy = { max: rows[0].retry_max, exitCodes: rows[0].retry_exit_codes, agentLost: rows[0].retry_agent_lost };
  if (policy.max === 0) return false;
  if (!cause.agentLost && cause.exitCode === undefined) {
    const { rows: failed } = await client.query(
      "SELECT exit_code FROM coordinator.steps WHERE run_id = $1 AND job = $2 AND state = $3 ORDER BY position LIMIT 1",
      [task.run_id, task.job, RunState.FAILED],
    );
    cause = { ...cause, exitCode: failed[0]?.exit_code ?? undefined };
  }
  // Attempts handed back by stopping agents are not failures: they do not count.
  const handbacks = rows[0].handbacks;
  if (!shouldRetry(policy, task.attempt - handbacks, cause)) return false;
  const retry = task.attempt - handbacks;
  const why = `attempt ${task.attempt} failed (${message}); retrying as attempt ${task.attempt + 1} (retry ${retry} of ${policy.max})`;
  await requeueTask(client, task, why);
  return true;
}

// Puts a task back in the queue for its next attempt, its steps reset; the
// attempt that ended takes its task token's writes with it.
async function requeueTask(client: PoolClient, task: { id: string; run_id: string; job: string }, why: string): Promise<void> {
  await client.query(
    `WITH live AS (${endLiveAttempts("$2::uuid", "$3")})
     UPDATE coordinator.tasks SET status = 'pending', agent_id = '', started = false, lease_expires_at = NULL, pending_since = now()
     WHERE id = $1`,
    [task.id, task.run_id, task.job],
  );
  await client.query(
    "UPDATE coordinator.jobs SET state = $3, message = $4, agent_id = '', finished_at = NULL WHERE run_id = $1 AND name = $2",
    [task.run_id, task.job, RunState.QUEUED, why],
  );
  const { rows: steps } = await client.query(
    `UPDATE coordinator.steps SET state = $3, exit_code = NULL, started_at = NULL, finished_at = NULL
     WHERE run_id = $1 AND job = $2 AND state <> $3 RETURNING name, position`,
    [task.run_id, task.job, RunState.QUEUED],
  );
  await appendJournal(
    client,
    task.run_id,
    { job: task.job, state: RunState.QUEUED, message: why },
    ...steps.sort((a, b) => a.position - b.position).map((step) => ({ job: task.job, step: step.name, state: RunState.QUEUED })),
  );
  await client.query("SELECT pg_notify($1, '')", [tasksChannel]);
}

// An agent that is stopping gives back a task it will not finish: what it
// held is released and the job waits for its next attempt on another agent.
export async function handBackTask(
  client: PoolClient,
  task: { id: string; run_id: string; job: string; attempt: number; cancel_requested: boolean },
  agentId: string,
  boss: PgBoss,
): Promise<void> {
  if (task.cancel_requested) return finishTask(client, boss, task, RunState.CANCELED, "canceled");
  const released = await releaseTaskReservations(client, task.id);
  const why = `attempt ${task.attempt} handed back by agent ${agentId}, which is stopping (released ${describeReservations(released)}); will run again as attempt ${task.attempt + 1}`;
  await client.query("UPDATE coordinator.tasks SET handbacks = handbacks + 1 WHERE id = $1", [task.id]);
  await requeueTask(client, task, why);
}
