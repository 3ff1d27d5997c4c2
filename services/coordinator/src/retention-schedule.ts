import type { PgBoss } from "pg-boss";
import type { SweepCounts } from "./engine/sweep-retention.ts";

// The pg-boss queue of retention sweeps, fed once a day by pg-boss's cron
// (in the pgboss schema, so every coordinator shares it). At most one sweep
// job is active and one waiting ("stately"); whichever coordinator fetches
// it sweeps, heartbeating, and one that dies lets a peer take the job over
// after a missed heartbeat.
export const retentionQueue = "retention-sweep";

// Every day at 03:17 UTC: a quiet hour in most places, off the full hour
// when other schedules fire.
export const retentionCron = "17 3 * * *";

export const retentionQueueOptions = {
  policy: "stately",
  expireInSeconds: 6 * 3600,
  heartbeatSeconds: 60,
  retryLimit: 3,
  retryDelay: 300,
  retryBackoff: true,
} as const;

export async function ensureRetentionQueue(boss: PgBoss): Promise<void> {
  if (await boss.getQueue(retentionQueue)) return;
  // Another coordinator may be creating it at the same moment.
  await boss.createQueue(retentionQueue, retentionQueueOptions).catch(async (err) => {
    if (!(await boss.getQueue(retentionQueue))) throw err;
  });
}

// `enabled` false (nothing ever expires): no daily sweep is scheduled, and
// one scheduled before is taken off.
export async function startRetentionSchedule(options: {
  boss: PgBoss;
  enabled: boolean;
  sweep: () => Promise<SweepCounts>;
  // A daily job needs no quick pickup: one look every 30 s.
  pollingIntervalSeconds?: number;
}): Promise<{ stop(): Promise<void> }> {
  const { boss } = options;
  await ensureRetentionQueue(boss);
  if (!options.enabled) {
    await boss.unschedule(retentionQueue);
    return { stop: async () => {} };
  }
  // Runs once for a day whose time passed while no coordinator was up.
  await boss.schedule(retentionQueue, retentionCron, null, { tz: "UTC", missed: "once" });
  // What the sweep deleted is the job's output.
  const worker = await boss.work(retentionQueue, { pollingIntervalSeconds: options.pollingIntervalSeconds ?? 30 }, () => options.sweep());
  return { stop: () => boss.offWork(retentionQueue, { id: worker, wait: false }) };
}
