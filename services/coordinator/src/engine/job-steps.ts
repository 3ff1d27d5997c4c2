import type { PoolClient } from "@otto/kit/db";
import type { RunState } from "./states.ts";

export interface StepRow {
  name: string;
  position: number;
  state: RunState;
  exit_code: number | null;
}

// A job's steps as they are now, in order (read under the run's lock).
export async function jobSteps(client: PoolClient, runId: string, job: string): Promise<StepRow[]> {
  const { rows } = await client.query(`SELECT ${jobStepsColumn("$1", "$2")} AS steps`, [runId, job]);
  return rows[0].steps;
}

// The same as a column (JSON) of a statement that may read more, for the
// job `job` of the run `run` (SQL expressions).
export function jobStepsColumn(run: string, job: string): string {
  return `(SELECT coalesce(json_agg(json_build_object('name', s.name, 'position', s.position, 'state', s.state, 'exit_code', s.exit_code)
    ORDER BY s.position), '[]') FROM coordinator.steps s WHERE s.run_id = ${run} AND s.job = ${job})`;
}
