import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Code } from "@connectrpc/connect";
import { migrate } from "@otto/kit/db";
import { migrations as objectsMigrations } from "@otto/objects/migrations";
import { expireObjects } from "@otto/objects/object-expiry";
import { ArtifactStore } from "@otto/objects/artifact-store";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { sweepRetention, type ObjectExpiry, type SweepCounts } from "@otto/coordinator/engine/sweep-retention";
import type { ExpiryScope } from "@otto/kit/expiry-scope";
import type { RetentionPolicy } from "@otto/kit/retention-config";
import { claim, startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { startDevS3, type DevS3 } from "../helpers/dev-s3.ts";
import { refused, RunState, runRow, scope, snapshot } from "./engine-rows.ts";

// sweepRetention deletes what retention expired: finished runs older than
// their retention with their rows and everything they stored (objects in
// storage first, then rows), and the logs and artifacts of kept runs by
// their own retention; never anything of a run still in flight. Batch by
// batch, one sweep at a time. Against a real Postgres with the objects
// service's schema, and the development S3 endpoint.

let db: EngineDb;
let s3: DevS3;
before(async () => {
  db = await startEngineDb();
  await migrate(db.pool, "objects", objectsMigrations);
  s3 = await startDevS3();
});
after(async () => {
  await s3?.stop();
  await db?.stop();
});

const policy: RetentionPolicy = { runDays: 90, logDays: 7, artifactDays: 30 };
const { SUCCEEDED, CANCELED } = RunState;

// The objects service's half, in this process: the real operation, with a
// record of each call and of every key it had storage delete.
function objectsSide() {
  const calls: { runIds: string[]; scope: ExpiryScope }[] = [];
  const { store, removed } = s3.recordingRemovals();
  let inFlight = 0;
  let mostInFlight = 0;
  const side: ObjectExpiry = {
    async expire(runIds, scope) {
      calls.push({ runIds, scope });
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      try {
        return await expireObjects(db.pool, store, runIds, scope);
      } finally {
        inFlight--;
      }
    },
  };
  return { side, calls, removed, mostInFlight: () => mostInFlight };
}

function sweep(side = objectsSide().side, options: { batchSize?: number } = {}): Promise<SweepCounts> {
  return sweepRetention(db.pool, side, policy, options);
}

async function backdate(runId: string, daysAgo: number): Promise<void> {
  await db.pool.query(
    `UPDATE coordinator.runs SET created_at = created_at - make_interval(secs => $2 * 86400),
       started_at = started_at - make_interval(secs => $2 * 86400), finished_at = finished_at - make_interval(secs => $2 * 86400)
     WHERE id = $1`,
    [runId, daysAgo],
  );
}

// A run of one job "build" that succeeded `daysAgo` days ago.
async function finishedRun(daysAgo: number): Promise<string> {
  const s = scope(db);
  const runId = await s.submit({ build: {} });
  const task = await claim(db, s.agent("a"));
  assert.ok(task);
  await db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: 1 }, { state: SUCCEEDED, message: "", steps: [] }));
  assert.equal((await runRow(db, runId)).state, SUCCEEDED);
  await backdate(runId, daysAgo);
  return runId;
}

// A run whose job an agent is running, begun `daysAgo` days ago.
async function runningRun(daysAgo: number): Promise<string> {
  const s = scope(db);
  const runId = await s.submit({ build: {} });
  assert.ok(await claim(db, s.agent("a")));
  await backdate(runId, daysAgo);
  return runId;
}

const logKey = (runId: string, attempt: number) => `logs/${runId}/build/attempt-${attempt}.log`;
const artifactKey = (runId: string, name: string) => `artifacts/${runId}/build/attempt-1/${createHash("sha256").update(name).digest("hex")}`;

// What a run of job "build" stores: attempt 1's log archived to an object,
// attempt 2's log kept in Postgres (a chunk), and one artifact.
async function store(runId: string, logState: "closed" | "open" = "closed"): Promise<void> {
  await s3.store.put(logKey(runId, 1), Buffer.from("attempt 1 printed this\n"), "text/plain");
  await s3.store.put(artifactKey(runId, "app.txt"), Buffer.from("the app\n"), "text/plain");
  await db.pool.query(
    `INSERT INTO objects.logs (run_id, job, attempt, state, size, object_key, closed_at)
     VALUES ($1, 'build', 1, 'closed', 23, $2, now()), ($1, 'build', 2, $3, 6, '', now())`,
    [runId, logKey(runId, 1), logState],
  );
  await db.pool.query("INSERT INTO objects.log_chunks (run_id, job, attempt, seq, start_offset, text, bytes, lines) VALUES ($1, 'build', 2, 1, 0, 'again\n', 6, 1)", [runId]);
  await db.pool.query(
    "INSERT INTO objects.artifacts (run_id, job, attempt, name, size, object_key) VALUES ($1, 'build', 1, 'app.txt', 8, $2)",
    [runId, artifactKey(runId, "app.txt")],
  );
}

// Everything of a run, in both schemas and in storage.
async function everything(runId: string) {
  const [logs, chunks, artifacts] = await Promise.all([
    db.pool.query("SELECT attempt, state, object_key, expired_at IS NOT NULL AS expired FROM objects.logs WHERE run_id = $1 ORDER BY attempt", [runId]),
    db.pool.query("SELECT count(*)::int AS n FROM objects.log_chunks WHERE run_id = $1", [runId]),
    db.pool.query("SELECT name, expired_at IS NOT NULL AS expired FROM objects.artifacts WHERE run_id = $1 ORDER BY name", [runId]),
  ]);
  const counts = await db.pool.query(
    `SELECT (SELECT count(*) FROM coordinator.runs WHERE id = $1)::int AS runs,
       (SELECT count(*) FROM coordinator.jobs WHERE run_id = $1)::int AS jobs,
       (SELECT count(*) FROM coordinator.steps WHERE run_id = $1)::int AS steps,
       (SELECT count(*) FROM coordinator.tasks WHERE run_id = $1)::int AS tasks,
       (SELECT count(*) FROM coordinator.journal WHERE run_id = $1)::int AS journal`,
    [runId],
  );
  return {
    ...counts.rows[0],
    logs: logs.rows.map((l) => `${l.attempt} ${l.state}${l.object_key ? " archived" : ""}${l.expired ? " expired_at" : ""}`),
    chunks: chunks.rows[0].n,
    artifacts: artifacts.rows.map((a) => `${a.name}${a.expired ? " expired_at" : ""}`),
    keys: [...(await s3.keys(`logs/${runId}/`)), ...(await s3.keys(`artifacts/${runId}/`))],
  };
}

const stored = (runId: string) => ({
  logs: ["1 closed archived", "2 closed"],
  chunks: 1,
  artifacts: ["app.txt"],
  keys: [logKey(runId, 1), artifactKey(runId, "app.txt")],
});
const gone = { runs: 0, jobs: 0, steps: 0, tasks: 0, journal: 0, logs: [], chunks: 0, artifacts: [], keys: [] };

test("a sweep deletes exactly what expired: old runs with all they stored, old logs and artifacts of kept runs; nothing of runs in flight", async () => {
  const old = await finishedRun(100);
  const canceled = await scope(db).submit({ build: {} });
  await db.tx((client) => cancelRun(client, canceled));
  assert.equal((await runRow(db, canceled)).state, CANCELED);
  await backdate(canceled, 95);
  const middle = await finishedRun(40); // past its logs' and artifacts' retention
  const recent = await finishedRun(10); // past its logs' retention only
  const fresh = await finishedRun(1);
  const running = await runningRun(200);
  const queued = await scope(db).submit({ build: {} });
  await backdate(queued, 200);
  for (const runId of [old, middle, recent, fresh, running]) await store(runId);
  await db.pool.query("UPDATE objects.logs SET state = 'open' WHERE run_id = $1 AND attempt = 2", [running]);
  const untouched = async () => ({
    fresh: [await snapshot(db, fresh), await everything(fresh)],
    running: [await snapshot(db, running), await everything(running)],
    queued: [await snapshot(db, queued), await everything(queued)],
  });
  const before = await untouched();
  const middleRun = await snapshot(db, middle);
  assert.deepEqual((await everything(old)).keys, stored(old).keys);

  const counts = await sweep();

  assert.deepEqual(counts, { runs: 2, logs: 2 + 2 + 2, artifacts: 1 + 1, objects: 2 + 2 + 1, deferredRuns: 0 });
  assert.deepEqual(await everything(old), gone);
  assert.deepEqual(await everything(canceled), gone);
  assert.deepEqual(await everything(middle), {
    ...(await everything(middle)),
    runs: 1,
    logs: ["1 expired expired_at", "2 expired expired_at"],
    chunks: 0,
    artifacts: ["app.txt expired_at"],
    keys: [],
  });
  assert.deepEqual(await snapshot(db, middle), middleRun, "the kept run's own rows are as they were");
  assert.deepEqual(await everything(recent), {
    ...(await everything(recent)),
    runs: 1,
    logs: ["1 expired expired_at", "2 expired expired_at"],
    chunks: 0,
    artifacts: ["app.txt"],
    keys: [artifactKey(recent, "app.txt")],
  });
  assert.deepEqual(await untouched(), before);
  const { rows } = await db.pool.query(
    "SELECT id, logs_expired_at IS NOT NULL AS logs, artifacts_expired_at IS NOT NULL AS artifacts FROM coordinator.runs WHERE id = ANY($1) ORDER BY id",
    [[middle, recent, fresh]],
  );
  assert.deepEqual(
    Object.fromEntries(rows.map((r) => [r.id, [r.logs, r.artifacts]])),
    { [middle]: [true, true], [recent]: [true, false], [fresh]: [false, false] },
  );

  // An expired artifact is not listed, and asking for it says what became of it.
  const artifacts = new ArtifactStore(db.pool, s3.store);
  assert.deepEqual(await artifacts.list(middle, ""), []);
  assert.equal((await artifacts.list(recent, "")).length, 1);
  await refused(
    artifacts.downloadUrl({ runId: middle, job: "build", attempt: 0, name: "app.txt" }),
    Code.NotFound,
    new RegExp(`artifact app\\.txt of job build \\(attempt 1\\) of run ${middle} was deleted by retention on \\d{4}-\\d\\d-\\d\\dT`),
  );

  // Nothing is left to do.
  assert.deepEqual(await sweep(), { runs: 0, logs: 0, artifacts: 0, objects: 0, deferredRuns: 0 });
  assert.deepEqual(await untouched(), before);
});

test("an expired run whose log is still open or not yet archived is left, whole, for the next sweep", async () => {
  const open = await finishedRun(100);
  const due = await finishedRun(100);
  const ready = await finishedRun(100);
  await store(open, "open");
  await store(due);
  await store(ready);
  await db.pool.query("UPDATE objects.logs SET archive_due = now() WHERE run_id = $1 AND attempt = 2", [due]);
  const openBefore = [await snapshot(db, open), await everything(open)];
  const dueBefore = [await snapshot(db, due), await everything(due)];

  assert.deepEqual(await sweep(), { runs: 1, logs: 2, artifacts: 1, objects: 2, deferredRuns: 2 });
  assert.deepEqual(await everything(ready), gone);
  assert.deepEqual([await snapshot(db, open), await everything(open)], openBefore);
  assert.deepEqual([await snapshot(db, due), await everything(due)], dueBefore);

  // The log closes, the archiver is done: the next sweep takes them.
  await db.pool.query("UPDATE objects.logs SET state = 'closed', archive_due = NULL WHERE run_id = ANY($1)", [[open, due]]);
  assert.deepEqual(await sweep(), { runs: 2, logs: 4, artifacts: 2, objects: 4, deferredRuns: 0 });
  assert.deepEqual(await everything(open), gone);
  assert.deepEqual(await everything(due), gone);
});

test("batches are bounded: more expired runs than a batch go in several, each committed before the next begins", async () => {
  const runs: string[] = [];
  for (let i = 0; i < 7; i++) {
    const runId = await finishedRun(100 + i);
    await store(runId);
    runs.push(runId);
  }
  const left = async () => (await db.pool.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE id = ANY($1)", [runs])).rows[0].n;
  const objects = objectsSide();
  const seenLeft: number[] = [];
  const counts = await sweep(
    {
      async expire(runIds, scope) {
        seenLeft.push(await left());
        return objects.side.expire(runIds, scope);
      },
    },
    { batchSize: 3 },
  );
  assert.deepEqual(counts, { runs: 7, logs: 14, artifacts: 7, objects: 14, deferredRuns: 0 });
  assert.deepEqual(objects.calls.map((c) => [c.runIds.length, c.scope]), [[3, "run"], [3, "run"], [1, "run"]]);
  assert.deepEqual(seenLeft, [7, 4, 1], "each batch's runs were deleted (and committed) before the next batch began");
  // Oldest first.
  assert.deepEqual(objects.calls.flatMap((c) => c.runIds), [...runs].reverse());
  for (const runId of runs) assert.deepEqual(await everything(runId), gone);
});

test("two sweeps started at once delete each thing once: one waits for the other, then finds nothing", async () => {
  const runs: string[] = [];
  for (let i = 0; i < 6; i++) {
    const runId = await finishedRun(100);
    await store(runId);
    runs.push(runId);
  }
  const kept = await finishedRun(20);
  await store(kept);
  const objects = objectsSide();
  const results = await Promise.all([sweep(objects.side, { batchSize: 4 }), sweep(objects.side, { batchSize: 4 })]);
  const total = (key: keyof SweepCounts) => results.reduce((sum, r) => sum + r[key], 0);
  assert.deepEqual(
    { runs: total("runs"), logs: total("logs"), artifacts: total("artifacts"), objects: total("objects") },
    { runs: 6, logs: 6 * 2 + 2, artifacts: 6, objects: 6 * 2 + 1 },
  );
  assert.ok(results.some((r) => r.runs === 0 && r.objects === 0), `one sweep found nothing left: ${JSON.stringify(results)}`);
  assert.equal(objects.mostInFlight(), 1, "never two batches at once");
  assert.equal(new Set(objects.removed).size, objects.removed.length, "no object was deleted twice");
  assert.deepEqual(new Set(objects.removed), new Set([...runs.flatMap((r) => stored(r).keys), logKey(kept, 1)]));
  for (const runId of runs) assert.deepEqual(await everything(runId), gone);
});

test("retention 0 keeps everything, or runs only; logs and artifacts kept as long as their runs go with them", async () => {
  const old = await finishedRun(1000);
  await store(old);
  const before = [await snapshot(db, old), await everything(old)];
  const objects = objectsSide();
  assert.deepEqual(await sweepRetention(db.pool, objects.side, { runDays: 0, logDays: 0, artifactDays: 0 }), {
    runs: 0,
    logs: 0,
    artifacts: 0,
    objects: 0,
    deferredRuns: 0,
  });
  assert.deepEqual([await snapshot(db, old), await everything(old)], before);
  assert.equal(objects.calls.length, 0);

  // Runs kept forever, their logs not.
  assert.deepEqual(await sweepRetention(db.pool, objects.side, { runDays: 0, logDays: 500, artifactDays: 0 }), {
    runs: 0,
    logs: 2,
    artifacts: 0,
    objects: 1,
    deferredRuns: 0,
  });
  assert.deepEqual(await everything(old), { ...before[1], logs: ["1 expired expired_at", "2 expired expired_at"], chunks: 0, keys: [artifactKey(old, "app.txt")] });

  assert.deepEqual(await sweepRetention(db.pool, objects.side, { runDays: 500, logDays: 500, artifactDays: 500 }), {
    runs: 1,
    logs: 0,
    artifacts: 1,
    objects: 1,
    deferredRuns: 0,
  });
  assert.deepEqual(objects.calls.map((c) => c.scope), ["logs", "run"], "no separate pass for logs and artifacts kept as long as their runs");
  assert.deepEqual(await everything(old), gone);
});

test("a sweep also deletes what a run's prefixes hold that no row names (an upload never completed), and keeps a kept run's", async () => {
  const old = await finishedRun(100);
  const recent = await finishedRun(10); // past its logs' retention only
  for (const runId of [old, recent]) {
    await store(runId);
    await s3.store.put(artifactKey(runId, "never-completed.bin"), Buffer.from("uploaded, never completed\n"), "application/octet-stream");
    await s3.store.put(`logs/${runId}/build/attempt-3.log.zst`, Buffer.from("no row names it"), "application/octet-stream");
  }
  const { side, removed } = objectsSide();

  const counts = await sweep(side);

  assert.equal(counts.runs, 1);
  assert.deepEqual(await everything(old), gone);
  assert.deepEqual((await everything(recent)).keys, [artifactKey(recent, "never-completed.bin"), artifactKey(recent, "app.txt")].sort(), "its artifacts are kept, its logs are not");
  assert.ok(removed.includes(artifactKey(old, "never-completed.bin")) && removed.includes(`logs/${recent}/build/attempt-3.log.zst`));
  assert.equal(new Set(removed).size, removed.length, "each object deleted once");
});
