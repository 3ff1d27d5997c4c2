import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import type { PoolClient } from "../../kit/src/db.ts";
import { appendJournal } from "./journal.ts";
import { enqueueAdvance } from "./run-queue.ts";
import { isFinal, RunState } from "./states.ts";

export interface TaskRef {
  taskId: string;
  attempt: number;
  agentId?: string;
}

export interface ClaimedTask {
  id: string;
  run_id: string;
  job: string;
  attempt: number;
}

// Claims the oldest pending task this agent can run. Locks the run row before
// the task row, the same order as advanceRun, so the two never deadlock.
export async function claimTask(
  client: PoolClient,
  agentId: string,
  labels: string[],
  leaseMs: number,
): Promise<ClaimedTask | undefined> {
  const { rows: candidates } = await client.query(
    `SELECT id, run_id FROM coordinator.tasks WHERE status = 'pending' AND labels <@ $1::text[]
     ORDER BY created_at LIMIT 20`,
    [labels],
  );
  for (const candidate of candidates) {
    await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [candidate.run_id]);
    const { rows } = await client.query<ClaimedTask>(
      `UPDATE coordinator.tasks SET status = 'assigned', attempt = attempt + 1, agent_id = $2,
         lease_expires_at = now() + make_interval(secs => $3::float / 1000)
       WHERE id = $1 AND status = 'pending' RETURNING id, run_id, job, attempt`,
      [candidate.id, agentId, leaseMs],
    );
    if (rows.length === 0) continue;
    const task = rows[0];
    await client.query(
      "UPDATE coordinator.jobs SET state = $3, agent_id = $4, started_at = now() WHERE run_id = $1 AND name = $2",
      [task.run_id, task.job, RunState.RUNNING, agentId],
    );
    const { rowCount: runStarted } = await client.query(
      "UPDATE coordinator.runs SET state = $2, started_at = now() WHERE id = $1 AND state = $3",
      [task.run_id, RunState.RUNNING, RunState.QUEUED],
    );
    if (runStarted) await appendJournal(client, task.run_id, { state: RunState.RUNNING });
    await appendJournal(client, task.run_id, {
      job: task.job,
      state: RunState.RUNNING,
      message: `attempt ${task.attempt} on agent ${agentId}`,
    });
    return task;
  }
  return undefined;
}

// Locks the task's run and checks that the caller holds the current attempt.
export async function lockCurrentAttempt(client: PoolClient, ref: TaskRef) {
  const { rows } = await client.query("SELECT run_id FROM coordinator.tasks WHERE id = $1", [ref.taskId]);
  if (rows.length === 0) throw new ConnectError(`task ${ref.taskId} not found`, Code.NotFound);
  await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [rows[0].run_id]);
  const { rows: tasks } = await client.query("SELECT * FROM coordinator.tasks WHERE id = $1", [ref.taskId]);
  const task = tasks[0];
  if (task.status !== "assigned" || task.attempt !== ref.attempt || (ref.agentId && task.agent_id !== ref.agentId)) {
    throw new ConnectError(
      `attempt ${ref.attempt} of task ${ref.taskId} is no longer current (task is ${task.status}, attempt ${task.attempt})`,
      Code.FailedPrecondition,
    );
  }
  return task as { id: string; run_id: string; job: string; attempt: number; cancel_requested: boolean; agent_id: string };
}

export async function reportStep(
  client: PoolClient,
  ref: TaskRef,
  stepIndex: number,
  state: RunState,
  exitCode: number | undefined,
): Promise<boolean> {
  const task = await lockCurrentAttempt(client, ref);
  const started = state === RunState.RUNNING;
  const { rows } = await client.query(
    `UPDATE coordinator.steps SET state = $4, exit_code = $5,
       started_at = CASE WHEN $6 THEN now() ELSE coalesce(started_at, now()) END,
       finished_at = CASE WHEN $6 THEN NULL ELSE now() END
     WHERE run_id = $1 AND job = $2 AND position = $3 AND state <> $4 RETURNING name`,
    [task.run_id, task.job, stepIndex, state, exitCode ?? null, started],
  );
  if (rows.length > 0) {
    await appendJournal(client, task.run_id, { job: task.job, step: rows[0].name, state, exitCode });
  }
  return task.cancel_requested;
}

// Ends a task's current attempt: the job takes `state`, its unfinished steps
// are closed, and the run is queued to advance.
export async function finishTask(
  client: PoolClient,
  boss: PgBoss,
  task: { id: string; run_id: string; job: string },
  state: RunState,
  message: string,
): Promise<void> {
  if (!isFinal(state)) throw new ConnectError("a task can only complete in a final state", Code.InvalidArgument);
  await client.query("UPDATE coordinator.tasks SET status = 'done', lease_expires_at = NULL WHERE id = $1", [task.id]);
  await client.query(
    "UPDATE coordinator.jobs SET state = $3, message = $4, finished_at = now() WHERE run_id = $1 AND name = $2",
    [task.run_id, task.job, state, message],
  );
  await appendJournal(client, task.run_id, { job: task.job, state, message });
  const { rows: steps } = await client.query(
    `UPDATE coordinator.steps SET state = CASE WHEN state = $3 THEN $4::smallint ELSE $5::smallint END, finished_at = now()
     WHERE run_id = $1 AND job = $2 AND state IN ($3, $6) RETURNING name, position, state`,
    [task.run_id, task.job, RunState.RUNNING, state === RunState.SUCCEEDED ? RunState.FAILED : state, RunState.CANCELED, RunState.QUEUED],
  );
  for (const step of steps.sort((a, b) => a.position - b.position)) {
    await appendJournal(client, task.run_id, { job: task.job, step: step.name, state: step.state });
  }
  await enqueueAdvance(boss, client, task.run_id);
}
