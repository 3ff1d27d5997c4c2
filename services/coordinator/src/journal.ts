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

// Appends one entry to a run's journal inside the caller's transaction. The
// sequence number comes from the run row, which this also locks, so every
// writer of a run is serialised and the journal has no gaps.
export async function appendJournal(client: PoolClient, runId: string, entry: JournalEntry): Promise<number> {
  const { rows } = await client.query(
    "UPDATE coordinator.runs SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    [runId],
  );
  const seq = Number(rows[0].last_seq);
  await client.query(
    `INSERT INTO coordinator.journal (run_id, seq, job, step, state, exit_code, message)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [runId, seq, entry.job ?? "", entry.step ?? "", entry.state, entry.exitCode ?? null, entry.message ?? ""],
  );
  await client.query("SELECT pg_notify($1, $2)", [journalChannel, runId]);
  return seq;
}
