import type { PoolClient } from "../../kit/src/db.ts";
import { randomUUID } from "node:crypto";
import { inSpan } from "../../kit/src/telemetry.ts";
import { appendJournal } from "./journal.ts";
import { isFinal, RunState } from "./states.ts";

export const tasksChannel = "otto_tasks";

interface JobRow {
  name: string;
  state: number;
  needs: string[];
  runs_on: string[];
  has_task: boolean;
}

// Moves a run forward as far as its current state allows: creates tasks for
// jobs whose needs all succeeded, cancels jobs that can no longer run, and
// finishes the run when every job is final. Idempotent; runs inside the
// caller's transaction, locking the run row unless the caller says it holds
// that lock already.
export function advanceRun(client: PoolClient, runId: string, options: { runLocked?: boolean } = {}): Promise<void> {
  return inSpan("advance run", { "otto.run_id": runId }, () => advance(client, runId, options.runLocked ?? false));
}

async function advance(client: PoolClient, runId: string, runLocked: boolean): Promise<void> {
  // Read after the lock is held, in a statement of its own: a statement that
  // waited for the lock would see the jobs as they were before the wait.
  if (!runLocked) await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  const { rows } = await client.query<JobRow & { run_state: number; cancel_requested: boolean }>(
    `SELECT r.state AS run_state, r.cancel_requested, j.name, j.state, j.needs, j.runs_on, t.id IS NOT NULL AS has_task
     FROM coordinator.runs r
       JOIN coordinator.jobs j ON j.run_id = r.id
       LEFT JOIN coordinator.tasks t ON t.run_id = j.run_id AND t.job = j.name
     WHERE r.id = $1 ORDER BY j.position`,
    [runId],
  );
  const run = rows[0] && { state: rows[0].run_state, cancel_requested: rows[0].cancel_requested };
  if (!run || isFinal(run.state)) return;
  const jobs: JobRow[] = rows;
  const byName = new Map(jobs.map((j) => [j.name, j]));
  let tasksCreated = 0;
  for (let changed = true; changed; ) {
    changed = false;
    for (const job of jobs) {
      if (job.state !== RunState.QUEUED || job.has_task) continue;
      const blocker = job.needs.map((n) => byName.get(n)!).find((n) => n.state === RunState.FAILED || n.state === RunState.CANCELED);
      if (run.cancel_requested || blocker) {
        const message = run.cancel_requested
          ? "run canceled before the job started"
          : `not run: needs "${blocker!.name}", which ${blocker!.state === RunState.FAILED ? "failed" : "was canceled"}`;
        await finishUnstartedJob(client, runId, job.name, message);
        job.state = RunState.CANCELED;
        changed = true;
      } else if (job.needs.every((n) => byName.get(n)!.state === RunState.SUCCEEDED)) {
        await client.query(
          `INSERT INTO coordinator.tasks (id, run_id, job, labels, status) VALUES ($1, $2, $3, $4, 'pending')`,
          [randomUUID(), runId, job.name, job.runs_on],
        );
        job.has_task = true;
        tasksCreated++;
      }
    }
  }
  if (tasksCreated > 0) await client.query("SELECT pg_notify($1, '')", [tasksChannel]);
  if (jobs.every((j) => isFinal(j.state))) {
    const state = run.cancel_requested
      ? RunState.CANCELED
      : jobs.every((j) => j.state === RunState.SUCCEEDED)
        ? RunState.SUCCEEDED
        : RunState.FAILED;
    await client.query("UPDATE coordinator.runs SET state = $2, finished_at = now() WHERE id = $1", [runId, state]);
    const failed = jobs.filter((j) => j.state === RunState.FAILED).map((j) => j.name);
    const message =
      state === RunState.SUCCEEDED ? "all jobs succeeded" : state === RunState.CANCELED ? "run canceled" : `failed jobs: ${failed.join(", ")}`;
    await appendJournal(client, runId, { state, message });
  }
}

async function finishUnstartedJob(client: PoolClient, runId: string, job: string, message: string): Promise<void> {
  await client.query(
    "UPDATE coordinator.jobs SET state = $3, message = $4, finished_at = now() WHERE run_id = $1 AND name = $2",
    [runId, job, RunState.CANCELED, message],
  );
  const { rows: steps } = await client.query(
    `UPDATE coordinator.steps SET state = $3 WHERE run_id = $1 AND job = $2 AND state = $4 RETURNING name, position`,
    [runId, job, RunState.CANCELED, RunState.QUEUED],
  );
  await appendJournal(
    client,
    runId,
    { job, state: RunState.CANCELED, message },
    ...steps.sort((a, b) => a.position - b.position).map((step) => ({ job, step: step.name, state: RunState.CANCELED })),
  );
}
