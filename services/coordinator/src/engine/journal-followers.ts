import { randomUUID } from "node:crypto";
import type { Pool } from "@otto/kit/db";

// A stream that follows every run's journal (WatchRuns) registers, so that
// every journal append is announced on the journal channel while it lasts
// (apply-changes.ts), not only those of watched runs. A registration lapses
// unless renewed: one a dead coordinator left behind stops the
// announcements after `leaseSeconds`.
export const followerLeaseSeconds = 60;

export interface JournalFollower {
  id: string;
  // Transactions from this id on see the registration and announce their
  // appends; those before it may not (the stream polls until they end).
  announcedFrom: bigint;
}

export async function startFollowing(pool: Pool): Promise<JournalFollower> {
  const id = randomUUID();
  await pool.query("DELETE FROM coordinator.journal_followers WHERE expires_at < now() - interval '1 minute'");
  await pool.query("INSERT INTO coordinator.journal_followers (id, expires_at) VALUES ($1, now() + make_interval(secs => $2))", [id, followerLeaseSeconds]);
  // Read after the registration committed: every transaction not yet
  // started (or without an id) then is below none of this snapshot's
  // running ones and will see the row.
  const { rows } = await pool.query("SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax");
  return { id, announcedFrom: BigInt(rows[0].xmax) };
}

export async function renewFollowing(pool: Pool, follower: JournalFollower): Promise<void> {
  await pool.query("UPDATE coordinator.journal_followers SET expires_at = now() + make_interval(secs => $2) WHERE id = $1", [follower.id, followerLeaseSeconds]);
}

export async function stopFollowing(pool: Pool, follower: JournalFollower): Promise<void> {
  await pool.query("DELETE FROM coordinator.journal_followers WHERE id = $1", [follower.id]);
}
