import { Code, ConnectError } from "@connectrpc/connect";
import type { Pool } from "@otto/kit/db";
import { refuseOthersTask } from "./current-attempt.ts";

// An agent keeps its attempt's lease, and everything reserved for it,
// alive; the answer says whether the run was canceled meanwhile. Not a
// state change, so it takes no lock on the run.
export async function heartbeatTask(
  pool: Pool,
  ref: { taskId: string; attempt: number; agentId: string },
  leaseMs: number,
): Promise<{ cancel: boolean }> {
  const { rows } = await pool.query(
    `WITH task AS (
       UPDATE coordinator.tasks SET lease_expires_at = now() + make_interval(secs => $4::float / 1000)
       WHERE id = $1 AND attempt = $2 AND agent_id = $3 AND status = 'assigned' RETURNING id, cancel_requested
     ), held AS (
       UPDATE coordinator.reservations r SET lease_expires_at = now() + make_interval(secs => $4::float / 1000)
       FROM task WHERE r.task_id = task.id
     )
     SELECT cancel_requested FROM task`,
    [ref.taskId, ref.attempt, ref.agentId, leaseMs],
  );
  if (rows.length > 0) return { cancel: rows[0].cancel_requested };
  const { rows: current } = await pool.query("SELECT attempt, agent_id FROM coordinator.tasks WHERE id = $1", [ref.taskId]);
  if (current.length === 0) throw new ConnectError(`task ${ref.taskId} not found`, Code.NotFound);
  refuseOthersTask(ref.taskId, current[0], ref.attempt, ref.agentId);
  throw new ConnectError(`attempt ${ref.attempt} of task ${ref.taskId} is not current for agent ${ref.agentId}`, Code.FailedPrecondition);
}
