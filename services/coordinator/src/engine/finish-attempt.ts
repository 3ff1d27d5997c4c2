import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import type { PoolClient } from "@otto/kit/db";
import { advanceRun, type RunSnapshot } from "./advance-run.ts";
import { applyChanges, type Change } from "./apply-changes.ts";
import { jobSteps, type StepRow } from "./job-steps.ts";
import { describeReservations, heldBy } from "./reservations.ts";
import type { FailureCause } from "./retry-policy.ts";
import { requeueChanges, retryReason, type AttemptOf } from "./retry-task.ts";
import { enqueueAdvance } from "./run-queue.ts";
import { isFinal, RunState } from "./states.ts";
import { closeUnfinishedSteps } from "./step-changes.ts";

export interface FinishOptions {
  cause?: FailureCause;
  // An agent's answer moves the run on in its own transaction, which holds
  // the run's lock; work found by a coordinator (expired leases) goes
  // through the shard's queue.
  advance?: "inline" | "queued";
  // Changes of the same transaction not applied yet (the attempt's last
  // step reports), applied with the job's end, and the job's steps as they
  // leave them.
  earlier?: Change[];
  steps?: StepRow[];
  // The run and its jobs as read under the lock (before `earlier`).
  run?: RunSnapshot;
  // Nothing follows in the transaction: it commits with the last statement.
  last?: boolean;
}

// Ends a task's current attempt and releases everything reserved for it
// (its task token writes no more, its reservations are released). A failure that the job's retry policy
// covers puts the job back in the queue for a new attempt; otherwise the job
// takes `state`, its unfinished steps are closed, and the run advances.
export async function finishAttempt(
  client: PoolClient,
  boss: PgBoss,
  task: AttemptOf & { cancel_requested?: boolean },
  state: RunState,
  message: string,
  { cause = { agentLost: false }, advance = "inline", earlier = [], steps, run, last = false }: FinishOptions = {},
): Promise<void> {
  if (!isFinal(state)) throw new ConnectError("a task can only complete in a final state", Code.InvalidArgument);
  steps ??= await jobSteps(client, task.run_id, task.job);
  const released = cause.agentLost ? await heldBy(client, task.id) : [];
  const changes = [...earlier];
  if (released.length > 0) {
    changes.push({
      entity: "note",
      job: task.job,
      state: RunState.RUNNING,
      message: `lease of attempt ${task.attempt} expired; released ${describeReservations(released)}`,
    });
  }
  const retry = state === RunState.FAILED && !task.cancel_requested ? await retryReason(client, task, steps, message, cause) : undefined;
  if (retry) {
    await applyChanges(client, task.run_id, [...changes, ...requeueChanges(task, steps, retry)], { last });
    return;
  }
  changes.push(
    { entity: "task", taskId: task.id, job: task.job, from: "assigned", to: "done" },
    { entity: "job", job: task.job, from: RunState.RUNNING, to: state, message },
    ...closeUnfinishedSteps(task.job, steps, state),
  );
  if (advance === "inline") {
    await advanceRun(client, task.run_id, { runLocked: true, changes, known: run, last });
  } else {
    await applyChanges(client, task.run_id, changes);
    await enqueueAdvance(boss, client, task.run_id);
  }
}
