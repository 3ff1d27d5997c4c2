// Disk use stays flat under retention: rounds of runs that each print a
// log for S3 and keep an artifact, swept with a retention of half a second
// between rounds. After each sweep the development S3's directory holds no
// object, weighs what it did after the first round's sweep, and every table
// that grows with runs is back to where it started.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { postJson, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

const rounds = 5;
const runsPerRound = 8;

// Every table a run, its jobs, logs and artifacts add rows to.
const tables = [
  "coordinator.runs",
  "coordinator.jobs",
  "coordinator.steps",
  "coordinator.tasks",
  "coordinator.journal",
  "coordinator.reservations",
  "objects.logs",
  "objects.log_chunks",
  "objects.artifacts",
  "objects.log_followers",
  "auth.live_attempts",
];

describe("retention soak", { timeout: 120_000 }, () => {
  let otto: TestOtto;
  let db: pg.Client;
  before(async () => {
    otto = await startTestOtto({ agents: 1, agentSlots: 4, env: { OTTO_RETENTION_DAYS: String(0.5 / 86_400) } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  // Files (objects with their md5 and metadata) and their bytes under the S3 directory.
  const s3Use = async () => {
    let files = 0;
    let bytes = 0;
    for (const entry of await readdir(join(otto.dataDir, "s3"), { recursive: true, withFileTypes: true })) {
      const path = join(entry.parentPath, entry.name);
      bytes += (await stat(path)).size;
      if (entry.isFile()) files++;
    }
    return { files, bytes };
  };
  const rowCounts = async () => {
    const { rows } = await db.query(`SELECT ${tables.map((t, i) => `(SELECT count(*) FROM ${t})::int AS t${i}`).join(", ")}`);
    return Object.fromEntries(tables.map((t, i) => [t, rows[0][`t${i}`]]));
  };
  const databaseBytes = async () => Number((await db.query("SELECT pg_database_size(current_database()) AS n")).rows[0].n);

  it(`keeps the S3 directory and the row counts flat over ${rounds} rounds of ${runsPerRound} runs`, async () => {
    const emptyRows = await rowCounts();
    const ir = pipeline("soak")
      .job("build", {
        artifacts: ["blob.bin"],
        // 40 kB of log (more than stays in Postgres), a 20 kB artifact.
        steps: ["seq -f 'line %06g of a chatty build, padded to some length' 1 800", "head -c 20000 /dev/urandom > blob.bin"],
      })
      .build();
    const afterSweep: { files: number; bytes: number }[] = [];
    for (let round = 1; round <= rounds; round++) {
      const runs = await Promise.all(Array.from({ length: runsPerRound }, () => submit(otto.client, ir)));
      for (const run of runs) {
        const done = await waitForRun(otto.client, run.id);
        assert.equal(done.state, RunState.SUCCEEDED, done.jobs[0]!.message);
      }
      const full = await s3Use();
      const fullRows = await rowCounts();
      assert.ok(fullRows["coordinator.runs"] === runsPerRound && fullRows["objects.artifacts"] === runsPerRound, JSON.stringify(fullRows));
      let swept = 0;
      await waitFor(
        `round ${round}'s runs swept`,
        async () => {
          const { status, json } = await postJson(otto.gatewayUrl, "/otto.v1.AdminService/SweepRetention", {});
          assert.equal(status, 200, JSON.stringify(json));
          swept += Number(json.runsDeleted ?? 0);
          return swept === runsPerRound;
        },
        30_000,
        100,
      );
      const use = await s3Use();
      afterSweep.push(use);
      console.log(
        `round ${round}: S3 ${full.files} files / ${full.bytes} bytes before the sweep, ${use.files} / ${use.bytes} after; ` +
          `Postgres ${(await databaseBytes()) >> 10} KiB`,
      );
      assert.ok(full.files >= runsPerRound * 2 * 3, `the round stored a log and an artifact per run: ${JSON.stringify(full)}`);
      assert.equal(use.files, 0, "no object left in S3");
      assert.ok(use.bytes <= afterSweep[0]!.bytes, `the S3 directory does not grow: ${JSON.stringify(afterSweep)}`);
      assert.deepEqual(await rowCounts(), emptyRows);
    }
  });
});
