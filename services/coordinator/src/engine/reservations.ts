import type { PoolClient } from "@otto/kit/db";

export interface AgentCapacity {
  id: string;
  slots: number;
  cpu: number;
  memoryBytes: bigint;
}

export interface JobNeeds {
  locks: string[];
  // How many jobs may hold a lock at once, where more than one.
  lockLimits: Record<string, number>;
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

export interface AgentUsage {
  slots: number;
  cpu: number;
  memory: bigint;
}

export function hasFreeSlot(agent: AgentCapacity, used: AgentUsage): boolean {
  return agent.slots <= 0 || used.slots < agent.slots;
}

// Reserves, inside the caller's transaction (which holds the agent's claim
// lock, so `used` is current), every lock the job names, once it is known
// that the agent has a slot, cpu and memory for it (the slot itself is
// reserved with the task's assignment, apply-changes.ts): all of them, or
// none (locks taken before one that was held are given back at once) and
// false.
export async function reserveLocks(
  client: PoolClient,
  agent: AgentCapacity,
  used: AgentUsage,
  needs: JobNeeds,
  target: ReservationTarget,
): Promise<boolean> {
  if (!hasFreeSlot(agent, used)) return false;
  if (needs.cpu > 0 && agent.cpu > 0 && used.cpu + needs.cpu > agent.cpu + 1e-9) return false;
  if (needs.memoryBytes > 0n && agent.memoryBytes > 0n && used.memory + needs.memoryBytes > agent.memoryBytes) return false;
  // Each lock in the first of its places no job holds (a lock held alone
  // has one place).
  for (const lock of needs.locks) {
    const { rowCount } = await client.query(
      `INSERT INTO coordinator.reservations (run_id, job, task_id, attempt, kind, name, lease_expires_at)
       SELECT $1, $2, $3, $4, 'lock', place, now() + make_interval(secs => $5::float / 1000)
       FROM unnest($6::text[]) WITH ORDINALITY AS places(place, n)
       WHERE NOT EXISTS (SELECT 1 FROM coordinator.reservations r WHERE r.kind = 'lock' AND r.name = places.place)
       ORDER BY n LIMIT 1
       ON CONFLICT (name) WHERE kind = 'lock' DO NOTHING`,
      [target.runId, target.job, target.taskId, target.attempt, target.leaseMs, lockPlaces(lock, needs.lockLimits[lock] ?? 1)],
    );
    if (rowCount !== 1) {
      await client.query("DELETE FROM coordinator.reservations WHERE task_id = $1 AND attempt = $2 AND kind = 'lock'", [target.taskId, target.attempt]);
      return false;
    }
  }
  return true;
}

// The places of a lock that `limit` jobs may hold at once, each a
// reservation of its own: the lock's name (the one place of a lock held
// alone), then "name#2" to "name#<limit>" ('#' is in no lock's name).
export function lockPlaces(lock: string, limit: number): string[] {
  return Array.from({ length: Math.max(1, limit) }, (_, i) => (i === 0 ? lock : `${lock}#${i + 1}`));
}

// The lock a place (a reservation's name) is of.
export function lockOfPlace(place: string): string {
  const mark = place.indexOf("#");
  return mark < 0 ? place : place.slice(0, mark);
}

// What is reserved for a task now. Its reservations are released by the
// write path when the task leaves "assigned" (apply-changes.ts).
export async function heldBy(client: PoolClient, taskId: string): Promise<{ kind: string; name: string }[]> {
  const { rows } = await client.query("SELECT kind, name FROM coordinator.reservations WHERE task_id = $1 ORDER BY id", [taskId]);
  return rows;
}

export function describeReservations(released: { kind: string; name: string }[]): string {
  const slots = released.filter((r) => r.kind === "slot").map((r) => `slot on ${r.name}`);
  const locks = released
    .filter((r) => r.kind === "lock")
    .map((r) => {
      const lock = lockOfPlace(r.name);
      return lock === r.name ? `lock ${lock}` : `lock ${lock} (place ${r.name.slice(lock.length + 1)})`;
    });
  return [...slots, ...locks].join(", ");
}
