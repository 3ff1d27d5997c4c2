import type { Pool, PoolClient } from "@otto/kit/db";
import { applyChanges, type Change } from "./apply-changes.ts";
import { artifactSourcesColumn, type ArtifactSource } from "./artifact-sources.ts";
import { describeReservations, hasFreeSlot, reserveLocks, type AgentCapacity, type AgentUsage } from "./reservations.ts";
import { RunState } from "./states.ts";

export interface ClaimedTask {
  id: string;
  run_id: string;
  job: string;
  attempt: number;
  // What was reserved for it, for the dispatch span: "slot on a1, lock prod".
  reserved?: string;
  // Seconds it waited, ready to run, until everything it needs was reserved.
  waited?: number;
  // The run's trace context and the job as the pipeline gives it (JSON).
  traceparent: string;
  spec: unknown;
  artifact_sources: ArtifactSource[];
  // Whether other tasks this agent could take were pending at the claim:
  // worth waking another waiting poll.
  more?: boolean;
}

// The claimed job's pipeline entry, its run's trace context and the
// attempts whose artifacts it gets, as columns.
const specColumns = (run: string, job: string) =>
  `${run}.traceparent, jsonb_path_query_first(${run}.pipeline, '$.jobs[*] ? (@.name == $name)', jsonb_build_object('name', ${job})) AS spec,
   ${artifactSourcesColumn(run, job)}`;

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

interface Candidate {
  id: string;
  run_id: string;
  run_state: RunState;
  job: string;
  attempt: number;
  locks: string[];
  lock_limits: Record<string, number> | null;
  cpu: number;
  memory_bytes: string;
  waited: number;
  traceparent: string;
  spec: unknown;
  artifact_sources: ArtifactSource[];
  more: boolean;
}

// Whether a task waits that an agent with the labels `labels` could take
// (SQL, of parameter expressions), other than those `besides` names.
function pendingFor(labels: string, besides = "true"): string {
  return `EXISTS (SELECT 1 FROM coordinator.tasks o WHERE o.status = 'pending' AND o.labels <@ ${labels}::text[] AND ${besides})`;
}

// The tasks given to an agent process's slot whose answer was lost:
// assigned, never started, not among those it says it runs or has finished
// (SQL conditions, of parameter expressions).
function lostAnswers(p: { agent: string; running: string; slot: string; incarnation: string }): string {
  return `status = 'assigned' AND agent_id = ${p.agent} AND agent_slot = ${p.slot} AND agent_incarnation = ${p.incarnation} AND NOT started
    AND NOT (id::text = ANY(${p.running}::text[]))`;
}

// Whether a claim could give the agent anything now: a pending task whose
// labels it has, or one of its own whose answer was lost. One statement
// outside any transaction, so a poll that finds nothing to do (an agent's
// slot asking again after each job) costs no claim.
export async function anythingToClaim(pool: Pool, agent: Claimant): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT ${pendingFor("$1")}
       OR EXISTS (SELECT 1 FROM coordinator.tasks WHERE ${lostAnswers({ agent: "$2", slot: "$3", incarnation: "$4", running: "$5" })}) AS any`,
    [agent.labels, agent.id, agent.slot, agent.incarnation, agent.runningTaskIds],
  );
  return rows[0].any;
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
  // After the lock, in one statement: what the agent's slots take up, a task
  // of its own whose answer was lost, and (when neither rules it out) the
  // first candidate, locked.
  const { rows: found } = await client.query(
    `WITH usage AS (
       SELECT count(*)::int AS slots, coalesce(sum(cpu), 0)::float8 AS cpu, coalesce(sum(memory_bytes), 0)::bigint AS memory
       FROM coordinator.reservations WHERE kind = 'slot' AND name = $1
     ), lost AS (
       SELECT json_agg(lost) AS lost FROM (
         SELECT id, run_id, job, attempt FROM coordinator.tasks
         WHERE ${lostAnswers({ agent: "$1", running: "$2", slot: "$3", incarnation: "$4" })} LIMIT 1) lost
     ), candidate AS (${candidateSql("$5", "$6", "(SELECT lost FROM lost) IS NULL AND ($7::int <= 0 OR (SELECT slots FROM usage) < $7)")})
     SELECT usage.*, lost.lost, (SELECT row_to_json(candidate) FROM candidate) AS candidate,
       ${pendingFor("$5")} AS waiting
     FROM usage, lost`,
    [agent.id, agent.runningTaskIds, agent.slot, agent.incarnation, agent.labels, [], agent.slots],
  );
  for (const task of (found[0].lost ?? []) as ClaimedTask[]) {
    const { rowCount } = await client.query("SELECT 1 FROM coordinator.runs WHERE id = $1 FOR UPDATE SKIP LOCKED", [task.run_id]);
    if (!rowCount) {
      contended = true;
      continue;
    }
    // Given again, not a state change: the lease starts over.
    const { rows } = await client.query<ClaimedTask>(
      `UPDATE coordinator.tasks t SET lease_expires_at = now() + make_interval(secs => $3::float / 1000)
       FROM coordinator.runs r
       WHERE t.id = $1 AND t.attempt = $2 AND t.status = 'assigned' AND NOT t.started AND r.id = t.run_id
       RETURNING t.id, t.run_id, t.job, t.attempt, ${specColumns("r", "t.job")}`,
      [task.id, task.attempt, leaseMs],
    );
    if (rows.length > 0) return { task: rows[0], contended };
  }
  // What the agent's slot reservations take up now.
  const used: AgentUsage = { slots: found[0].slots, cpu: found[0].cpu, memory: BigInt(found[0].memory) };
  if (!hasFreeSlot(agent, used)) return { contended };
  const passedOver: string[] = [];
  let candidate: Candidate | undefined = found[0].candidate ?? undefined;
  // Tasks it could take wait, but their runs are held by other transactions.
  if (!candidate) return { contended: contended || found[0].waiting };
  for (let tries = 0; candidate && tries < 20; tries++) {
    const task = await claimCandidate(client, agent, used, candidate, leaseMs);
    if (task) return { task, contended };
    passedOver.push(candidate.id);
    const { rows } = await client.query<Candidate>(candidateSql("$1", "$2"), [agent.labels, passedOver]);
    candidate = rows[0];
  }
  // Pending tasks left that this agent could take were skipped because their
  // runs were busy: worth trying again soon.
  const { rows } = await client.query(
    `SELECT ${pendingFor("$1", "NOT (o.id = ANY($2::uuid[]))")} AS waiting`,
    [agent.labels, passedOver],
  );
  return { contended: contended || rows[0].waiting };
}

// The oldest pending task with the agent's labels (parameter `labels`) that
// is not among those passed over (`passedOver`) and whose run no other
// transaction holds, locked with its run; `also` is a further condition.
function candidateSql(labels: string, passedOver: string, also = "true"): string {
  return `SELECT t.id, t.run_id, r.state AS run_state, t.job, t.attempt, j.locks, j.lock_limits, j.cpu, j.memory_bytes,
      extract(epoch FROM now() - t.pending_since)::float8 AS waited, ${specColumns("r", "t.job")},
      ${pendingFor(labels, "o.id <> t.id")} AS more
    FROM coordinator.tasks t
      JOIN coordinator.jobs j ON j.run_id = t.run_id AND j.name = t.job
      JOIN coordinator.runs r ON r.id = t.run_id
    WHERE t.status = 'pending' AND t.labels <@ ${labels}::text[] AND NOT (t.id = ANY(${passedOver}::uuid[])) AND ${also}
    ORDER BY t.created_at LIMIT 1
    FOR UPDATE OF r, t SKIP LOCKED`;
}

async function claimCandidate(
  client: PoolClient,
  agent: Claimant,
  used: AgentUsage,
  candidate: Candidate,
  leaseMs: number,
): Promise<ClaimedTask | undefined> {
  const attempt = candidate.attempt + 1;
  const needs = { locks: candidate.locks, lockLimits: candidate.lock_limits ?? {}, cpu: candidate.cpu, memoryBytes: BigInt(candidate.memory_bytes) };
  const target = { runId: candidate.run_id, job: candidate.job, taskId: candidate.id, attempt, leaseMs };
  if (!(await reserveLocks(client, agent, used, needs, target))) return undefined;
  const holds = needs.locks.length > 0 ? `; holds ${needs.locks.map((l) => `lock ${l}`).join(", ")}` : "";
  const changes: Change[] = [
    ...(candidate.run_state === RunState.QUEUED ? [{ entity: "run", from: RunState.QUEUED, to: RunState.RUNNING } as const] : []),
    {
      entity: "task",
      taskId: candidate.id,
      job: candidate.job,
      from: "pending",
      to: "assigned",
      assignment: { attempt, agentId: agent.id, slot: agent.slot, incarnation: agent.incarnation, leaseMs, cpu: needs.cpu, memoryBytes: needs.memoryBytes },
    },
    { entity: "job", job: candidate.job, from: RunState.QUEUED, to: RunState.RUNNING, agentId: agent.id, message: `attempt ${attempt} on agent ${agent.id}${holds}` },
  ];
  // Not committed with this statement (commitWith): a coordinator that
  // stalls after a claim committed holds the agent's answer while the
  // attempt's lease runs out, and the job fails though nothing of it ran.
  // Stalled before its COMMIT, the claim is rolled back instead (Postgres
  // ends a session idle in a transaction after 5 s).
  await applyChanges(client, candidate.run_id, changes);
  return {
    id: candidate.id,
    run_id: candidate.run_id,
    job: candidate.job,
    attempt,
    waited: candidate.waited,
    traceparent: candidate.traceparent,
    spec: candidate.spec,
    artifact_sources: candidate.artifact_sources,
    more: candidate.more,
    reserved: describeReservations([{ kind: "slot", name: agent.id }, ...needs.locks.map((name) => ({ kind: "lock", name }))]),
  };
}
