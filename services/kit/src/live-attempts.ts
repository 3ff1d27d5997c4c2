import { Code, ConnectError } from "@connectrpc/connect";
import type pg from "pg";

// A task token writes (log chunks, artifacts) only while its attempt is
// live. Coordinators record each attempt they hand out in
// auth.live_attempts, in the claim's transaction, and remove it in the
// transaction that ends the attempt (completion, hand-back, retry, a lapsed
// lease) or revokes its agent. The objects service checks the row inside
// the statement that writes, so the check costs no round trip of its own,
// and an attempt that ended is refused from the commit that ended it on.
// The table is created by the auth schema's migrations (token-store.ts).

// SQL that records the attempts `source` (rows with run_id, job, attempt)
// as live, held by `agent` (an SQL expression).
export function recordLiveAttempts(source: string, agent: string): string {
  return `INSERT INTO auth.live_attempts (run_id, job, attempt, agent_id) SELECT run_id, job, attempt, ${agent} FROM ${source}
    ON CONFLICT (run_id, job, attempt) DO UPDATE SET agent_id = EXCLUDED.agent_id`;
}

// SQL that ends every attempt of one job (`run` and `job` are SQL expressions).
export function endLiveAttempts(run: string, job: string): string {
  return `DELETE FROM auth.live_attempts WHERE run_id = ${run} AND job = ${job}`;
}

// SQL that ends every attempt of the agents whose ids `agents` selects.
export function endAgentsAttempts(agents: string): string {
  return `DELETE FROM auth.live_attempts WHERE agent_id IN (${agents})`;
}

// An SQL condition: the attempt is live and held by `agent`, a text
// parameter that is NULL when nobody is to be checked (without TLS there
// are no task tokens).
export function attemptIsLive(run: string, job: string, attempt: string, agent: string): string {
  return `(${agent}::text IS NULL OR EXISTS (
    SELECT 1 FROM auth.live_attempts WHERE run_id = ${run} AND job = ${job} AND attempt = ${attempt} AND agent_id = ${agent}))`;
}

export interface AttemptRef {
  runId: string;
  job: string;
  attempt: number;
}

// Refuses a write for an attempt that is not live (for writers whose
// statement cannot carry the condition itself). `agent` undefined: no check.
export async function requireLiveAttempt(db: pg.Pool | pg.PoolClient, ref: AttemptRef, agent: string | undefined): Promise<void> {
  if (agent === undefined) return;
  const { rows } = await db.query(`SELECT ${attemptIsLive("$1::uuid", "$2", "$3::int", "$4")} AS live`, [ref.runId, ref.job, ref.attempt, agent]);
  if (!rows[0].live) throw attemptEnded(ref);
}

// The answer to a write with the token of an attempt that ended (or whose
// agent was revoked): the token is genuine, the attempt's state refuses it,
// as a coordinator refuses a stale attempt.
export function attemptEnded({ runId, job, attempt }: AttemptRef): ConnectError {
  return new ConnectError(
    `attempt ${attempt} of job ${job} in run ${runId} has ended (or its agent was revoked): its task token writes no more logs or artifacts`,
    Code.FailedPrecondition,
  );
}
