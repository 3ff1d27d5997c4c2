// The daily retention sweep: a pg-boss schedule in the pgboss schema that
// every coordinator shares, and a queue whose jobs any coordinator's worker
// may take, one sweep at a time. Two workers (as two coordinators would
// run) given several sweep jobs at once delete each thing once.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { PgBoss } from "pg-boss";
import { migrate } from "@otto/kit/db";
import { migrations as objectsMigrations } from "@otto/objects/migrations";
import { expireObjects } from "@otto/objects/object-expiry";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { sweepRetention, type ObjectExpiry, type SweepCounts } from "@otto/coordinator/engine/sweep-retention";
import { retentionCron, retentionQueue, startRetentionSchedule } from "@otto/coordinator/retention-schedule";
import { claim, startEngineDb, type EngineDb } from "./helpers/engine-db.ts";
import { startDevS3, type DevS3 } from "./helpers/dev-s3.ts";
import { waitFor } from "./helpers/otto.ts";
import { RunState, scope } from "./engine/engine-rows.ts";

let db: EngineDb;
let s3: DevS3;
const bosses: PgBoss[] = [];
before(async () => {
  db = await startEngineDb();
  await migrate(db.pool, "objects", objectsMigrations);
  s3 = await startDevS3();
});
after(async () => {
  for (const boss of bosses) await boss.stop({ graceful: false });
  await s3?.stop();
  await db?.stop();
});

// A coordinator's pg-boss, as its main starts it.
async function coordinatorBoss(): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: db.url, schema: "pgboss", max: 2 });
  boss.on("error", () => {});
  await boss.start();
  bosses.push(boss);
  return boss;
}

async function expiredRunWithObjects(): Promise<{ runId: string; keys: string[] }> {
  const s = scope(db);
  const runId = await s.submit({ build: {} });
  const task = await claim(db, s.agent("a"));
  assert.ok(task);
  await db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: 1 }, { state: RunState.SUCCEEDED, message: "", steps: [] }));
  await db.pool.query("UPDATE coordinator.runs SET finished_at = now() - interval '100 days' WHERE id = $1", [runId]);
  const logKey = `logs/${runId}/build/attempt-1.log`;
  const artifactKey = `artifacts/${runId}/build/attempt-1/${createHash("sha256").update("app.txt").digest("hex")}`;
  await s3.store.put(logKey, Buffer.from("printed\n"), "text/plain");
  await s3.store.put(artifactKey, Buffer.from("the app\n"), "text/plain");
  await db.pool.query("INSERT INTO objects.logs (run_id, job, attempt, state, size, object_key) VALUES ($1, 'build', 1, 'closed', 8, $2)", [runId, logKey]);
  await db.pool.query("INSERT INTO objects.artifacts (run_id, job, attempt, name, size, object_key) VALUES ($1, 'build', 1, 'app.txt', 8, $2)", [
    runId,
    artifactKey,
  ]);
  return { runId, keys: [logKey, artifactKey] };
}

test("the daily sweep is a pg-boss schedule, made once however many coordinators start, and taken off when nothing expires", async () => {
  const [a, b] = [await coordinatorBoss(), await coordinatorBoss()];
  const sweep = async (): Promise<SweepCounts> => ({ runs: 0, logs: 0, artifacts: 0, objects: 0, deferredRuns: 0 });
  const workers = [await startRetentionSchedule({ boss: a, enabled: true, sweep }), await startRetentionSchedule({ boss: b, enabled: true, sweep })];
  const schedules = await a.getSchedules(retentionQueue);
  assert.deepEqual(
    schedules.map((s) => [s.name, s.cron, s.timezone]),
    [[retentionQueue, "17 3 * * *", "UTC"]],
  );
  const { rows } = await db.pool.query("SELECT name, cron, timezone FROM pgboss.schedule");
  assert.deepEqual(rows, [{ name: retentionQueue, cron: retentionCron, timezone: "UTC" }]);
  // Once a day, at 03:17 UTC.
  const [first, second] = a.previewSchedule(retentionCron, { count: 2 });
  assert.equal(second!.getTime() - first!.getTime(), 24 * 3600 * 1000);
  assert.equal(first!.toISOString().slice(11, 16), "03:17");
  assert.equal((await a.getQueue(retentionQueue))?.policy, "stately");

  for (const worker of workers) await worker.stop();
  await startRetentionSchedule({ boss: a, enabled: false, sweep });
  assert.deepEqual(await a.getSchedules(retentionQueue), []);
  await startRetentionSchedule({ boss: a, enabled: true, sweep }).then((w) => w.stop());
  assert.equal((await a.getSchedules(retentionQueue)).length, 1);
});

test("two coordinators' workers given sweep jobs at once sweep one at a time and delete each thing once", async () => {
  const runs = await Promise.all(Array.from({ length: 5 }, () => expiredRunWithObjects()));
  const { store, removed } = s3.recordingRemovals();
  let inFlight = 0;
  let mostInFlight = 0;
  const side: ObjectExpiry = { expire: (runIds, scope) => expireObjects(db.pool, store, runIds, scope) };
  let sweeps = 0;
  let letFirstGo!: () => void;
  const firstMayGo = new Promise<void>((resolve) => (letFirstGo = resolve));
  const sweep = async () => {
    mostInFlight = Math.max(mostInFlight, ++inFlight);
    try {
      if (sweeps++ === 0) await firstMayGo;
      return await sweepRetention(db.pool, side, { runDays: 90, logDays: 90, artifactDays: 90 }, { batchSize: 2 });
    } finally {
      inFlight--;
    }
  };
  const [a, b] = [await coordinatorBoss(), await coordinatorBoss()];
  const workers = [
    await startRetentionSchedule({ boss: a, enabled: true, sweep, pollingIntervalSeconds: 0.5 }),
    await startRetentionSchedule({ boss: b, enabled: true, sweep, pollingIntervalSeconds: 0.5 }),
  ];
  // A day's job is being worked on when two more come (a missed day's, a
  // restarted schedule's): one of them waits, the other is not even kept.
  assert.ok(await a.send(retentionQueue));
  await waitFor("the first sweep under way", () => sweeps === 1);
  const more = [await b.send(retentionQueue), await a.send(retentionQueue)];
  assert.equal(more.filter((id) => id !== null).length, 1, `one more job waits: ${more}`);
  letFirstGo();
  const jobs = await waitFor(
    "every sweep job done",
    async () => {
      const { rows } = await db.pool.query("SELECT state, output FROM pgboss.job WHERE name = $1", [retentionQueue]);
      return rows.length > 0 && rows.every((r) => r.state === "completed") && rows;
    },
    30_000,
    100,
  );
  for (const worker of workers) await worker.stop();
  assert.equal(jobs.length, 2);
  const total = (key: keyof SweepCounts) => jobs.reduce((sum: number, job: { output: SweepCounts }) => sum + job.output[key], 0);
  assert.deepEqual({ runs: total("runs"), logs: total("logs"), artifacts: total("artifacts"), objects: total("objects") }, { runs: 5, logs: 5, artifacts: 5, objects: 10 });
  assert.equal(mostInFlight, 1, "one sweep at a time");
  assert.equal(new Set(removed).size, removed.length, "no object was deleted twice");
  assert.deepEqual(removed.sort(), runs.flatMap((r) => r.keys).sort());
  assert.deepEqual(await s3.keys(), []);
  const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE id = ANY($1)", [runs.map((r) => r.runId)]);
  assert.equal(rows[0].n, 0);
});
