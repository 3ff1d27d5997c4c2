import type { Pool } from "@otto/kit/db";

// A WatchRun stream starts and stops following a run. Its journal entries
// are announced (NOTIFY, apply-changes.ts) only while the run has watchers:
// every NOTIFY wakes every session listening on any channel, and most runs
// nobody watches. Counted under the run's row lock, before the watcher's
// first read: a change in progress commits first (and is read), a later one
// sees the count (and is announced). A count a dead coordinator left behind
// costs only that run's announcements.
export async function startWatching(pool: Pool, runId: string): Promise<void> {
  await pool.query("UPDATE coordinator.runs SET watchers = watchers + 1 WHERE id = $1", [runId]);
}

export async function stopWatching(pool: Pool, runId: string): Promise<void> {
  await pool.query("UPDATE coordinator.runs SET watchers = greatest(watchers - 1, 0) WHERE id = $1", [runId]);
}
