import type { PoolClient } from "@otto/kit/db";
import type { Pipeline } from "@otto/gen/v1/pipeline_pb";
import { inSpan } from "@otto/kit/telemetry";
import { applyChanges, type Change } from "./apply-changes.ts";
import { jobSteps } from "./job-steps.ts";
import { admitIfItsTurn, groupsChannel, type GroupPlace } from "./concurrency-group.ts";
import { canceled, gateOf, type StoredCondition } from "./job-gate.ts";
import { storedCondition, type RunFacts } from "./pipeline-rows.ts";
import { closeUnfinishedSteps } from "./step-changes.ts";
import { isFinal, RunState } from "./states.ts";

export interface JobRow {
  name: string;
  state: RunState;
  needs: string[];
  runs_on: string[];
  has_task: boolean;
  // Its approval's question when it still needs one (null: it needs none,
  // or was approved).
  awaits_approval: string | null;
  condition: StoredCondition | null;
}

// A job of a pipeline as it is stored: queued, without a task.
export function newJobRow(job: Pipeline["jobs"][number], facts: RunFacts): JobRow {
  return {
    name: job.name,
    state: RunState.QUEUED,
    needs: job.needs,
    runs_on: job.runsOn,
    has_task: false,
    awaits_approval: job.approval ? job.approval.message : null,
    condition: storedCondition(job, facts),
  };
}

export interface AdvancePlan {
  // Jobs that will not run (SKIPPED, or CANCELED with their run), and why,
  // in the order found.
  ended: { job: string; from: RunState; to: RunState; message: string }[];
  // Jobs whose needs are done that now wait for approval, and its question.
  waiting: { job: string; question: string }[];
  // Jobs whose needs let them run: each gets a task now.
  ready: JobRow[];
  // The run's end, once every job is final.
  finish?: { to: RunState; message: string };
}

// Moves a run forward as far as its current state allows: creates tasks for
// jobs whose needs all succeeded, cancels jobs that can no longer run, and
// finishes the run when every job is final. Idempotent; runs inside the
// caller's transaction, locking the run row unless the caller says it holds
// that lock already. `changes` that the caller has not applied yet are
// applied with the advance's own, as if they had been before it.
// `known`: the run and its jobs as the caller read them under the lock.
// `last`: nothing follows in the transaction, which commits with the
// advance's statement.
export function advanceRun(
  client: PoolClient,
  runId: string,
  options: { runLocked?: boolean; changes?: Change[]; known?: RunSnapshot; last?: boolean } = {},
): Promise<void> {
  return inSpan("advance run", { "otto.run_id": runId }, () =>
    advance(client, runId, options.runLocked ?? false, options.changes ?? [], options.known, options.last ?? false),
  );
}

// A run's state and its jobs, read under the run's lock.
export interface RunSnapshot {
  run?: { state: RunState; cancelRequested: boolean; group?: GroupPlace };
  jobs: JobRow[];
}

// Columns of a run's row `r` that make a RunSnapshot (runSnapshotOf): its
// state, and its jobs in order with whether each has a task not done.
export const runSnapshotColumns = `r.state AS run_state, r.cancel_requested,
  CASE WHEN r.concurrency_group IS NOT NULL THEN json_build_object('name', r.concurrency_group, 'limit', r.concurrency_limit, 'admitted', r.admitted, 'place', r.group_place::text) END AS concurrency_group,
  (SELECT coalesce(json_agg(json_build_object('name', j.name, 'state', j.state, 'needs', j.needs, 'runs_on', j.runs_on,
     'has_task', t.id IS NOT NULL AND t.status <> 'done', 'awaits_approval', CASE WHEN j.approved_by IS NULL THEN j.approval END,
     'condition', j.condition) ORDER BY j.position), '[]')
   FROM coordinator.jobs j LEFT JOIN coordinator.tasks t ON t.run_id = j.run_id AND t.job = j.name WHERE j.run_id = r.id) AS jobs`;

export function runSnapshotOf(row: { run_state: RunState; cancel_requested: boolean; concurrency_group: GroupPlace | null; jobs: JobRow[] } | undefined): RunSnapshot {
  return row ? { run: { state: row.run_state, cancelRequested: row.cancel_requested, group: row.concurrency_group ?? undefined }, jobs: row.jobs } : { jobs: [] };
}

// The first advance of a run just stored, from its jobs as they were stored
// (all queued, none with a task), without reading them back. `admitted`:
// false for a run waiting in its concurrency group's line.
// `last` (the default): nothing follows in the transaction, which commits
// with the advance's statement.
export function advanceNewRun(client: PoolClient, runId: string, jobs: JobRow[], earlier: Change[], last = true, admitted = true): Promise<void> {
  return inSpan("advance run", { "otto.run_id": runId }, async () => {
    const plan = planAdvance({ cancelRequested: false, admitted }, jobs);
    const changes: Change[] = [...earlier];
    // Jobs whose condition is false from the start, and what needs them.
    for (const { job, from, to, message } of plan.ended) changes.push(...(await endUnstartedJob(client, runId, job, to, message, from)));
    changes.push(...waitForApproval(plan.waiting), ...newTasks(plan.ready));
    if (plan.finish) changes.push({ entity: "run", from: RunState.QUEUED, to: plan.finish.to, message: plan.finish.message });
    await applyChanges(client, runId, changes, { last });
  });
}

async function advance(client: PoolClient, runId: string, runLocked: boolean, earlier: Change[], known: RunSnapshot | undefined, last: boolean): Promise<void> {
  // Read after the lock is held, in a statement of its own: a statement that
  // waited for the lock would see the jobs as they were before the wait.
  if (!runLocked) await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE", [runId]);
  const { run, jobs } = known ?? runSnapshotOf((await client.query(`SELECT ${runSnapshotColumns} FROM coordinator.runs r WHERE r.id = $1`, [runId])).rows[0]);
  if (!run || isFinal(run.state)) return applyChanges(client, runId, earlier, { last });
  const byName = new Map(jobs.map((j) => [j.name, j]));
  for (const change of earlier) {
    const job = change.entity === "job" || change.entity === "task" ? byName.get(change.job) : undefined;
    if (job && change.entity === "job") job.state = change.to;
    if (job && change.entity === "task") job.has_task = change.to !== "done";
  }
  if (run.group && !run.group.admitted && !run.cancelRequested) {
    const admission = await admitIfItsTurn(client, runId, run.group);
    if (admission) earlier = [...earlier, admission];
    run.group.admitted = admission !== undefined;
  }
  const plan = planAdvance({ cancelRequested: run.cancelRequested, admitted: run.group?.admitted ?? true }, jobs);
  // The line of its group moves on once it has ended.
  if (plan.finish && run.group) await client.query("SELECT pg_notify($1, $2)", [groupsChannel, run.group.name]);
  const changes: Change[] = [...earlier];
  for (const { job, from, to, message } of plan.ended) changes.push(...(await endUnstartedJob(client, runId, job, to, message, from)));
  changes.push(...waitForApproval(plan.waiting), ...newTasks(plan.ready));
  if (plan.finish) changes.push({ entity: "run", from: run.state, to: plan.finish.to, message: plan.finish.message });
  await applyChanges(client, runId, changes, { last });
}

// What a run's jobs, as they are, make happen next (`jobs` is updated to
// the states and tasks the plan leaves). A run waiting in its concurrency
// group's line (`admitted` false) starts nothing.
export function planAdvance(run: { cancelRequested: boolean; admitted?: boolean }, jobs: JobRow[]): AdvancePlan {
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const plan: AdvancePlan = { ended: [], waiting: [], ready: [] };
  const mayStart = run.cancelRequested || run.admitted !== false;
  for (let changed = mayStart; changed; ) {
    changed = false;
    for (const job of jobs) {
      if (job.state === RunState.WAITING && run.cancelRequested) {
        plan.ended.push({ job: job.name, from: RunState.WAITING, to: RunState.CANCELED, message: "run canceled while the job waited for approval" });
        job.state = RunState.CANCELED;
        changed = true;
        continue;
      }
      if (job.state !== RunState.QUEUED || job.has_task) continue;
      const gate = run.admitted === false ? canceled : gateOf(job, job.needs.map((n) => byName.get(n)!), run.cancelRequested, () => failedAbove(job, byName));
      if (gate.kind === "wait") continue;
      changed = true;
      if (gate.kind === "end") {
        plan.ended.push({ job: job.name, from: RunState.QUEUED, to: gate.to, message: gate.message });
        job.state = gate.to;
      } else if (job.awaits_approval !== null) {
        plan.waiting.push({ job: job.name, question: job.awaits_approval });
        job.state = RunState.WAITING;
      } else {
        plan.ready.push(job);
        job.has_task = true;
      }
    }
  }
  // A run without jobs yet (its pipeline is still being read from its
  // commit) waits for them, unless it is canceled.
  if (jobs.every((j) => isFinal(j.state)) && (jobs.length > 0 || run.cancelRequested)) plan.finish = runEnd(run, jobs);
  return plan;
}

// Whether a job it needs, directly or through others, failed.
function failedAbove(job: JobRow, byName: Map<string, JobRow>): boolean {
  const seen = new Set<string>();
  const stack = [...job.needs];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const need = byName.get(name)!;
    if (need.state === RunState.FAILED) return true;
    stack.push(...need.needs);
  }
  return false;
}

// How a run whose jobs are all final ends: SUCCEEDED when each job
// succeeded or was skipped.
function runEnd(run: { cancelRequested: boolean }, jobs: JobRow[]): { to: RunState; message: string } {
  if (run.cancelRequested) return { to: RunState.CANCELED, message: "run canceled" };
  const failed = jobs.filter((j) => j.state !== RunState.SUCCEEDED && j.state !== RunState.SKIPPED).map((j) => j.name);
  if (failed.length > 0) return { to: RunState.FAILED, message: `failed jobs: ${failed.join(", ")}` };
  const skipped = jobs.filter((j) => j.state === RunState.SKIPPED).length;
  return { to: RunState.SUCCEEDED, message: skipped > 0 ? `all jobs succeeded or were skipped (${skipped} skipped)` : "all jobs succeeded" };
}

// Jobs whose needs are done that wait for a person's approval, holding
// nothing meanwhile (decide-approval.ts).
function waitForApproval(waiting: AdvancePlan["waiting"]): Change[] {
  return waiting.map(({ job, question }) => ({
    entity: "job",
    job,
    from: RunState.QUEUED,
    to: RunState.WAITING,
    message: `waiting for approval${question ? `: ${question}` : ""}`,
  }));
}

// A task for each ready job; the agents with its labels hear of it when the
// transaction commits.
function newTasks(ready: JobRow[]): Change[] {
  return ready.map((job) => ({ entity: "new task", job: job.name, labels: job.runs_on }));
}

// The changes that end a job that never started (SKIPPED or CANCELED), and its steps.
async function endUnstartedJob(client: PoolClient, runId: string, job: string, to: RunState, message: string, from: RunState): Promise<Change[]> {
  const steps = await jobSteps(client, runId, job);
  return [{ entity: "job", job, from, to, message }, ...closeUnfinishedSteps(job, steps, to)];
}
