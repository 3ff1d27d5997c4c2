import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { expireApproval } from "@otto/coordinator/engine/expire-approval";
import { startEngineDb, type EngineDb } from "../helpers/engine-db.ts";
import { jobStates, RunState, runRow, scope } from "./engine-rows.ts";

// A job nobody approved within its approval's timeout FAILS, saying so; one
// whose time has not come is left waiting.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

test("a job past its approval's timeout fails, and what needs it is skipped", async () => {
  const s = scope(db);
  const runId = await s.submit({ deploy: { approval: { timeoutMs: 1500 } }, notify: { needs: ["deploy"] } });
  assert.deepEqual(await jobStates(db, runId), { deploy: "WAITING", notify: "QUEUED" }, "a job that needs nothing waits at once");
  // A day later, as far as the job's deadline is concerned.
  await db.pool.query("UPDATE coordinator.jobs SET waiting_until = waiting_until - interval '1 day' WHERE run_id = $1", [runId]);
  assert.equal(await db.tx((client) => expireApproval(client, runId, "deploy")), true);
  assert.deepEqual(await jobStates(db, runId), { deploy: "FAILED", notify: "SKIPPED" });
  const { rows } = await db.pool.query("SELECT message, waiting_until FROM coordinator.jobs WHERE run_id = $1 AND name = 'deploy'", [runId]);
  assert.deepEqual([rows[0].message, rows[0].waiting_until], ["not approved within 1.5s", null]);
  assert.equal((await runRow(db, runId)).state, RunState.FAILED);
});

test("a job whose time has not come is left waiting", async () => {
  const s = scope(db);
  const runId = await s.submit({ deploy: { approval: { message: "ok?" } } });
  assert.equal(await db.tx((client) => expireApproval(client, runId, "deploy")), false);
  const { rows } = await db.pool.query("SELECT state, waiting_until > now() + interval '23 hours' AS a_day FROM coordinator.jobs WHERE run_id = $1", [runId]);
  assert.deepEqual([rows[0].state, rows[0].a_day], [RunState.WAITING, true], "the default timeout is 24 hours");
});
