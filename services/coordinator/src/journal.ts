import type { PoolClient } from "../../kit/src/db.ts";
import type { RunState } from "./states.ts";

export interface JournalEntry {
  job?: string;
  step?: string;
  state: RunState;
  exitCode?: number | null;
  message?: string;
}

export const journalChannel = "otto_journal";

// Appends entries to a run's journal inside the caller's transaction, in one
// statement. Sequence numbers come from the run row, which this also locks,
// so every writer of a run is serialised and the journal has no gaps; the
// watchers of the run are notified when the transaction commits.
export async function appendJournal(client: PoolClient, runId: string, ...entries: JournalEntry[]): Promise<void> {
  if (entries.length === 0) return;
  await client.query(
    `WITH run AS (
       UPDATE coordinator.runs SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq - $2 AS first_seq
     )
     INSERT INTO coordinator.journal (run_id, seq, job, step, state, exit_code, message)
     SELECT $1, run.first_seq + e.n, e.job, e.step, e.state, e.exit_code, e.message
     FROM run, unnest($3::text[], $4::text[], $5::smallint[], $6::int[], $7::text[]) WITH ORDINALITY AS e(job, step, state, exit_code, message, n)
     RETURNING pg_notify($8, $1::text)`,
    [
      runId,
      entries.length,
      entries.map((e) => e.job ?? ""),
      entries.map((e) => e.step ?? ""),
      entries.map((e) => e.state),
      entries.map((e) => e.exitCode ?? null),
      entries.map((e) => e.message ?? ""),
      journalChannel,
    ],
  );
}
