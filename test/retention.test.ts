// Retention end to end: real runs with a retention of one second, swept
// through the gateway's AdminService (as curl would) and the CLI. Finished
// runs go with their logs and artifacts, in object storage and in
// Postgres; a run in flight, and what its finished jobs stored, stays, and
// finishes as if nothing happened.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { pipeline, submit, submitAndWait, waitForRun, RunState } from "@otto/sdk";
import { repoRoot } from "@otto/launcher/system";
import { postJson, postJsonStream, request, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

const oneSecond = String(1 / 86_400);

describe("retention", { timeout: 180_000 }, () => {
  let otto: TestOtto;
  let db: pg.Client;
  let gate: string;
  let s3Bucket: string;

  before(async () => {
    // Every log goes to S3, however small.
    otto = await startTestOtto({
      coordinators: 2,
      agents: 1,
      agentSlots: 4,
      env: { OTTO_RETENTION_DAYS: oneSecond, OTTO_LOG_INLINE_MAX_BYTES: "0" },
    });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    gate = await stepsSharedDir(otto, "retention");
    s3Bucket = join(otto.dataDir, "s3", "otto");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
    if (gate) await rm(gate, { recursive: true, force: true });
  });

  const sweep = async () => {
    const { status, json } = await postJson(otto.gatewayUrl, "/otto.v1.AdminService/SweepRetention", {});
    assert.equal(status, 200, JSON.stringify(json));
    const n = (name: string) => Number(json[name] ?? 0);
    return { runs: n("runsDeleted"), logs: n("logsDeleted"), artifacts: n("artifactsDeleted"), objects: n("objectsDeleted"), deferred: n("runsDeferred"), policy: json.policy };
  };
  // The files of a run in the development S3's directory.
  const filesOf = async (runId: string) => {
    const found: string[] = [];
    for (const top of ["logs", "artifacts"]) {
      const dir = join(s3Bucket, top, runId);
      if (existsSync(dir)) for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) if (entry.isFile()) found.push(entry.name);
    }
    return found;
  };
  const rowsOf = async (runId: string) => {
    const { rows } = await db.query(
      `SELECT (SELECT count(*) FROM coordinator.runs WHERE id = $1)::int AS runs,
         (SELECT count(*) FROM coordinator.jobs WHERE run_id = $1)::int AS jobs,
         (SELECT count(*) FROM coordinator.steps WHERE run_id = $1)::int AS steps,
         (SELECT count(*) FROM coordinator.tasks WHERE run_id = $1)::int AS tasks,
         (SELECT count(*) FROM coordinator.journal WHERE run_id = $1)::int AS journal,
         (SELECT count(*) FROM objects.logs WHERE run_id = $1)::int AS logs,
         (SELECT count(*) FROM objects.log_chunks WHERE run_id = $1)::int AS chunks,
         (SELECT count(*) FROM objects.artifacts WHERE run_id = $1)::int AS artifacts`,
      [runId],
    );
    return rows[0];
  };
  const archived = (runIds: string[], logs: number) =>
    waitFor(`${logs} logs of ${runIds.length} runs archived`, async () => {
      const { rows } = await db.query("SELECT count(*)::int AS n FROM objects.logs WHERE run_id = ANY($1) AND object_key <> ''", [runIds]);
      return rows[0].n === logs;
    });
  const readLog = async (runId: string, job: string) => {
    const { status, messages } = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId, job });
    assert.equal(status, 200);
    return messages.map((m) => m.text).join("");
  };

  it("deletes finished runs, their logs and artifacts, in storage and in Postgres; a run in flight is untouched and finishes", async () => {
    // In flight: its first job finishes (log, artifact), its second waits for the gate.
    const inFlight = await submit(
      otto.client,
      pipeline("in-flight")
        .job("first", { artifacts: ["first.txt"], steps: ["echo first job ran; echo kept > first.txt"] })
        .job("second", { needs: ["first"], artifacts: ["second.txt"], steps: [`while [ ! -f ${gate}/open ]; do sleep 0.05; done; echo second job ran; echo done > second.txt`] })
        .build(),
    );
    const finished = await Promise.all(
      [1, 2, 3].map((i) =>
        submitAndWait(
          otto.client,
          pipeline(`short-${i}`).job("build", { artifacts: ["out.bin"], steps: [`seq 1 2000; head -c 5000 /dev/urandom > out.bin`] }).build(),
        ),
      ),
    );
    for (const run of finished) assert.equal(run.state, RunState.SUCCEEDED, run.jobs[0]!.message);
    const finishedIds = finished.map((run) => run.id);
    await waitFor("the first job done and the second running", async () => {
      const { run } = await otto.client.runs.getRun({ runId: inFlight.id });
      return run!.jobs.find((j) => j.name === "second")!.state === RunState.RUNNING;
    });
    await archived(finishedIds, 3);
    await archived([inFlight.id], 1);
    for (const runId of finishedIds) assert.equal((await filesOf(runId)).length, 2 * 3, "a log and an artifact (each an object, its md5 and its metadata)");
    const inFlightFiles = await filesOf(inFlight.id);
    assert.equal(inFlightFiles.length, 2 * 3);
    // What the run in flight has (its journal and its second job's log come
    // and grow as it runs) and what its finished job stored.
    const inFlightRows = async () => {
      const { journal, chunks, logs, ...rows } = await rowsOf(inFlight.id);
      const first = await db.query(
        `SELECT l.state, l.object_key, l.size, (SELECT count(*) FROM objects.log_chunks c WHERE c.run_id = l.run_id AND c.job = l.job)::int AS chunks
         FROM objects.logs l WHERE l.run_id = $1 AND l.job = 'first'`,
        [inFlight.id],
      );
      return { ...rows, first: first.rows, atLeastJournal: journal >= 5 };
    };
    const inFlightBefore = await inFlightRows();

    // Swept as often as it takes: the runs expire a second after they finished.
    const total = { runs: 0, logs: 0, artifacts: 0, objects: 0 };
    await waitFor(
      "the three finished runs deleted",
      async () => {
        const swept = await sweep();
        assert.deepEqual(swept.policy, { runDays: 1 / 86_400, logDays: 1 / 86_400, artifactDays: 1 / 86_400 });
        for (const key of Object.keys(total) as (keyof typeof total)[]) total[key] += swept[key];
        return total.runs === 3;
      },
      30_000,
      200,
    );
    assert.deepEqual(total, { runs: 3, logs: 3, artifacts: 3, objects: 6 });
    for (const runId of finishedIds) {
      assert.deepEqual(await filesOf(runId), []);
      assert.deepEqual(await rowsOf(runId), { runs: 0, jobs: 0, steps: 0, tasks: 0, journal: 0, logs: 0, chunks: 0, artifacts: 0 });
      const got = await postJson(otto.gatewayUrl, "/otto.v1.RunService/GetRun", { runId });
      assert.equal(got.json.code, "not_found");
      assert.deepEqual((await otto.client.artifacts.listArtifacts({ runId })).artifacts, []);
    }

    // The run in flight, and what its finished job stored, are as they were.
    assert.deepEqual(await filesOf(inFlight.id), inFlightFiles);
    assert.deepEqual(await inFlightRows(), inFlightBefore);
    assert.match(await readLog(inFlight.id, "first"), /first job ran/);
    await writeFile(join(gate, "open"), "");
    const done = await waitForRun(otto.client, inFlight.id);
    assert.equal(done.state, RunState.SUCCEEDED, done.jobs.map((j) => j.message).join("; "));
    assert.match(await readLog(inFlight.id, "second"), /second job ran/);
    const { url } = await otto.client.artifacts.getArtifactUrl({ runId: inFlight.id, job: "first", name: "first.txt" });
    assert.equal((await request(url)).text, "kept\n");
  });

  it("sweeps from the CLI, and only for an admin", async () => {
    const { token } = await otto.client.admin.createToken({ name: "writer", scopes: ["runs:write"] });
    const refused = await postJson(otto.gatewayUrl, "/otto.v1.AdminService/SweepRetention", {}, { authorization: `Bearer ${token}` });
    assert.equal(refused.status, 403);
    assert.equal(refused.json.code, "permission_denied");

    const run = await submitAndWait(otto.client, pipeline("for-the-cli").job("build", { steps: ["echo hi"] }).build());
    await archived([run.id], 1);
    // The objects service deletes for coordinators only.
    const objectsUrl = otto.supervisor.info().find((p) => p.name === "objects")!.url!;
    const direct = await postJson(objectsUrl, "/otto.v1.RetentionStoreService/ExpireObjects", { runIds: [run.id], scope: "EXPIRY_SCOPE_RUN" }, {
      authorization: `Bearer ${otto.adminToken}`,
    });
    assert.equal(direct.json?.code, "permission_denied", direct.text);
    assert.equal((await filesOf(run.id)).length, 3);
    const output = await waitFor(
      "the CLI's sweep deleting the run",
      async () => {
        const result = await runCli(["--url", otto.gatewayUrl, "--token", otto.adminToken!, "--ca", otto.caFile!, "retention", "sweep"]);
        assert.equal(result.code, 0, result.stderr);
        return (await rowsOf(run.id)).runs === 0 && result.stdout;
      },
      30_000,
      200,
    );
    assert.match(output, /^retention: runs 1 seconds, logs 1 seconds, artifacts 1 seconds$/m);
    assert.match(output, /^deleted [1-9]\d* runs, \d+ logs, \d+ artifacts \(\d+ stored objects\)/m);
    assert.deepEqual(await filesOf(run.id), []);
  });
});

describe("retention of logs and artifacts shorter than their runs", { timeout: 120_000 }, () => {
  let otto: TestOtto;
  let db: pg.Client;
  before(async () => {
    otto = await startTestOtto({
      agents: 1,
      env: { OTTO_RETENTION_DAYS: "30", OTTO_LOG_RETENTION_DAYS: oneSecond, OTTO_ARTIFACT_RETENTION_DAYS: oneSecond, OTTO_LOG_INLINE_MAX_BYTES: "0" },
    });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  it("deletes a kept run's log text and artifacts; the run reads as before, its log and artifact say what became of them", async () => {
    const run = await submitAndWait(otto.client, pipeline("kept").job("build", { artifacts: ["out.txt"], steps: ["seq 1 500; echo built > out.txt"] }).build());
    assert.equal(run.state, RunState.SUCCEEDED, run.jobs[0]!.message);
    await waitFor("the log archived", async () => (await db.query("SELECT object_key FROM objects.logs WHERE run_id = $1", [run.id])).rows[0]?.object_key);
    const total = { runs: 0, logs: 0, artifacts: 0, objects: 0 };
    await waitFor(
      "the log and the artifact expired",
      async () => {
        const { json } = await postJson(otto.gatewayUrl, "/otto.v1.AdminService/SweepRetention", {});
        total.runs += Number(json.runsDeleted ?? 0);
        total.logs += Number(json.logsDeleted ?? 0);
        total.artifacts += Number(json.artifactsDeleted ?? 0);
        total.objects += Number(json.objectsDeleted ?? 0);
        return total.logs === 1 && total.artifacts === 1;
      },
      30_000,
      200,
    );
    assert.deepEqual(total, { runs: 0, logs: 1, artifacts: 1, objects: 2 });
    for (const top of ["logs", "artifacts"]) assert.equal(existsSync(join(otto.dataDir, "s3", "otto", top, run.id)), false, `no ${top} left in S3`);
    const { rows } = await db.query(
      `SELECT l.state, l.expired_at IS NOT NULL AS expired, (SELECT count(*) FROM objects.log_chunks c WHERE c.run_id = l.run_id)::int AS chunks
       FROM objects.logs l WHERE l.run_id = $1`,
      [run.id],
    );
    assert.deepEqual(rows, [{ state: "expired", expired: true, chunks: 0 }]);

    const kept = await otto.client.runs.getRun({ runId: run.id });
    assert.equal(kept.run!.state, RunState.SUCCEEDED);
    const { status, messages } = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId: run.id, job: "build" });
    assert.equal(status, 200);
    assert.match(messages.map((m) => m.deleted ?? "").join(""), /^this log was deleted by retention at \d{4}-/);
    assert.deepEqual((await otto.client.artifacts.listArtifacts({ runId: run.id })).artifacts, []);
    const url = await postJson(otto.gatewayUrl, "/otto.v1.ArtifactService/GetArtifactUrl", { runId: run.id, job: "build", name: "out.txt" });
    assert.equal(url.json.code, "not_found");
    assert.match(url.json.message, /^artifact out\.txt of job build \(attempt 1\) of run .* was deleted by retention on \d{4}-/);
  });
});

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "sdk/src/cli.ts", ...args], { cwd: repoRoot, env, timeout: 60_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}
