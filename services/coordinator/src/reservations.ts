import type { PoolClient } from "../../kit/src/db.ts";

export interface AgentCapacity {
  id: string;
  slots: number;
  cpu: number;
  memoryBytes: bigint;
}

export interface JobNeeds {
  locks: string[];
  cpu: number;
  memoryBytes: bigint;
}

export interface ReservationTarget {
  runId: string;
  job: string;
  taskId: string;
  attempt: number;
  leaseMs: number;
}

// Reserves, inside the caller's transaction, a slot on the agent (with the
// job's cpu and memory) and every lock the job names. Returns false when
// something is taken; the caller then rolls back to a savepoint it took
// before, so that it ends up with all of them or none.
export async function reserveAll(
  client: PoolClient,
  agent: AgentCapacity,
  needs: JobNeeds,
  target: ReservationTarget,
): Promise<boolean> {
  const { rows } = await client.query(
    `SELECT count(*)::int AS slots, coalesce(sum(cpu), 0)::float8 AS cpu, coalesce(sum(memory_bytes), 0)::bigint AS memory
     FROM coordinator.reservations WHERE kind = 'slot' AND name = $1`,
    [agent.id],
  );
  const used = rows[0];
  if (agent.slots > 0 && used.slots >= agent.slots) return false;
  if (needs.cpu > 0 && agent.cpu > 0 && used.cpu + needs.cpu > agent.cpu + 1e-9) return false;
  if (needs.memoryBytes > 0n && agent.memoryBytes > 0n && BigInt(used.memory) + needs.memoryBytes > agent.memoryBytes) return false;
  const values = [target.runId, target.job, target.taskId, target.attempt, target.leaseMs];
  if (needs.locks.length > 0) {
    const { rowCount } = await client.query(
      `INSERT INTO coordinator.reservations (run_id, job, task_id, attempt, kind, name, lease_expires_at)
       SELECT $1, $2, $3, $4, 'lock', lock, now() + make_interval(secs => $5::float / 1000) FROM unnest($6::text[]) AS lock
       ON CONFLICT (name) WHERE kind = 'lock' DO NOTHING`,
      [...values, needs.locks],
    );
    // The caller rolls back to its savepoint, undoing the locks that were taken.
    if (rowCount !== needs.locks.length) return false;
  }
  await client.query(
    `INSERT INTO coordinator.reservations (run_id, job, task_id, attempt, kind, name, cpu, memory_bytes, lease_expires_at)
     VALUES ($1, $2, $3, $4, 'slot', $6, $7, $8, now() + make_interval(secs => $5::float / 1000))`,
    [...values, agent.id, needs.cpu, String(needs.memoryBytes)],
  );
  return true;
}

export async function releaseTaskReservations(client: PoolClient, taskId: string): Promise<{ kind: string; name: string }[]> {
  const { rows } = await client.query(
    "DELETE FROM coordinator.reservations WHERE task_id = $1 RETURNING kind, name",
    [taskId],
  );
  return rows;
}

export function describeReservations(released: { kind: string; name: string }[]): string {
  const slots = released.filter((r) => r.kind === "slot").map((r) => `slot on ${r.name}`);
  const locks = released.filter((r) => r.kind === "lock").map((r) => `lock ${r.name}`);
  return [...slots, ...locks].join(", ");
}
