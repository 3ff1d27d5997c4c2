import { Code, ConnectError } from "@connectrpc/connect";
import type { PoolClient } from "@otto/kit/db";

export interface TaskRef {
  taskId: string;
  attempt: number;
  agentId?: string;
  // The authenticated agent making the call: another agent's task is refused.
  caller?: string;
}

export interface CurrentAttempt {
  id: string;
  run_id: string;
  job: string;
  attempt: number;
  cancel_requested: boolean;
  agent_id: string;
}

// Locks the task's run and checks that the caller holds the current attempt.
export async function lockCurrentAttempt(client: PoolClient, ref: TaskRef): Promise<CurrentAttempt> {
  // Both rows locked: a statement that waited for the run's lock reads
  // them again as they are when it gets it.
  const { rows: tasks } = await client.query(
    `SELECT t.id, t.run_id, t.job, t.attempt, t.cancel_requested, t.agent_id, t.status
     FROM coordinator.tasks t JOIN coordinator.runs r ON r.id = t.run_id WHERE t.id = $1 FOR UPDATE OF r, t`,
    [ref.taskId],
  );
  if (tasks.length === 0) throw new ConnectError(`task ${ref.taskId} not found`, Code.NotFound);
  const task = tasks[0];
  refuseOthersTask(ref.taskId, task, ref.attempt, ref.caller);
  if (task.status !== "assigned" || task.attempt !== ref.attempt || (ref.agentId && task.agent_id !== ref.agentId)) {
    throw new ConnectError(
      `attempt ${ref.attempt} of task ${ref.taskId} is no longer current (task is ${task.status}, attempt ${task.attempt})`,
      Code.FailedPrecondition,
    );
  }
  return task;
}

// The current attempt of a task belongs to its agent: another agent asking
// about it is refused (a stale attempt is for the caller to sort out).
export function refuseOthersTask(taskId: string, task: { attempt: number; agent_id: string }, attempt: number, caller: string | undefined): void {
  // A task whose attempt went back to the queue has no agent: its last
  // holder is told that its attempt ended, below, not that it is a stranger.
  if (caller !== undefined && task.attempt === attempt && task.agent_id !== "" && task.agent_id !== caller) {
    throw new ConnectError(`task ${taskId} is not assigned to agent ${caller}`, Code.PermissionDenied);
  }
}
