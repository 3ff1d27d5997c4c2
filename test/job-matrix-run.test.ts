// A job matrix run end to end: each expansion of a 2×2 matrix runs as a job
// of its own with its values in its environment, a job that needs the
// matrix job starts once all four have succeeded, and the widened names
// work wherever a job is named: logs and artifacts (kept under storage keys
// that are not the raw name) through the SDK, the CLI and a Connect GET.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import pg from "pg";
import { readLogLines, RunState, submit, watchRun, waitForRun, type Run, type RunEvent } from "@otto/sdk";
import { request, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { runCli } from "./helpers/cli.ts";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const yaml = `name: matrix-run
jobs:
  test:
    matrix:
      node: ["20", "22"]
      os: [linux, alpine]
    env:
      LABEL: node \${{ matrix.node }} on \${{ matrix.os }}
    artifacts: [out.txt]
    steps:
      - name: show \${{ matrix.node }}/\${{ matrix.os }}
        run: |
          echo "values: MATRIX_NODE=$MATRIX_NODE MATRIX_OS=$MATRIX_OS ($LABEL)"
          echo "built for $MATRIX_NODE-$MATRIX_OS" > out.txt
  report:
    needs: [test]
    steps:
      - run: echo all four done
`;

const expansions = ["test[node=20,os=linux]", "test[node=20,os=alpine]", "test[node=22,os=linux]", "test[node=22,os=alpine]"];

describe("a job matrix, run", () => {
  let otto: TestOtto;
  let db: pg.Client;
  let run: Run;
  const events: RunEvent[] = [];

  before(async () => {
    // Every log goes to S3, so that its object key is made from the job's name.
    otto = await startTestOtto({ agents: 1, agentSlots: 4, env: { OTTO_LOG_INLINE_MAX_BYTES: "0" } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    const submitted = await submit(otto.client, yaml, "matrix.yml");
    for await (const event of watchRun(otto.client, submitted.id)) events.push(event);
    run = await waitForRun(otto.client, submitted.id);
  });
  after(async () => {
    if (otto && process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  it("runs each expansion with its values, and the job that needs them after all four", async () => {
    assert.equal(run.state, RunState.SUCCEEDED, run.jobs.map((j) => `${j.name}: ${j.message}`).join("\n"));
    assert.deepEqual(
      run.jobs.map((job) => job.name),
      [...expansions, "report"],
    );
    assert.deepEqual(run.jobs.at(-1)!.needs, expansions);
    assert.deepEqual(
      run.jobs.map((job) => job.steps[0].name),
      ["show 20/linux", "show 20/alpine", "show 22/linux", "show 22/alpine", "echo all four done"],
    );
    for (const name of expansions) {
      const [, node, os] = /node=(\d+),os=(\w+)/.exec(name)!;
      const lines: string[] = [];
      for await (const line of readLogLines(otto.client, run.id, name, { raw: true })) lines.push(line.text);
      assert.ok(lines.includes(`values: MATRIX_NODE=${node} MATRIX_OS=${os} (node ${node} on ${os})`), `${name}:\n${lines.join("\n")}`);
    }
    // In the run's journal, the report job starts after every expansion has succeeded.
    const at = (job: string, state: RunState) => events.findIndex((e) => e.job === job && e.step === "" && e.state === state);
    const reportStarts = at("report", RunState.RUNNING);
    assert.ok(reportStarts > 0, "the report job ran");
    for (const name of expansions) {
      const succeeded = at(name, RunState.SUCCEEDED);
      assert.ok(succeeded >= 0 && succeeded < reportStarts, `${name} succeeded (event ${succeeded}) before report started (event ${reportStarts})`);
    }
  });

  it("keeps an expansion's log and artifacts under a key made from the hash of its name, and an old-form name's as it was", async () => {
    const name = "test[node=22,os=alpine]";
    // Moved to S3 by the objects service's archiver, after the log closed.
    const rows = await waitFor("both logs archived", async () => {
      const { rows } = await db.query("SELECT job, object_key FROM objects.logs WHERE run_id = $1 AND job = ANY($2) ORDER BY job", [run.id, [name, "report"]]);
      return rows.length === 2 && rows.every((row) => row.object_key !== "") && rows;
    });
    assert.deepEqual(rows, [
      { job: "report", object_key: `logs/${run.id}/report/attempt-1.log.zst` },
      { job: name, object_key: `logs/${run.id}/job.${sha256(name)}/attempt-1.log.zst` },
    ]);
    const { url } = await otto.client.artifacts.getArtifactUrl({ runId: run.id, job: name, name: "out.txt" });
    assert.match(url, new RegExp(`/artifacts/${run.id}/job\\.${sha256(name)}/attempt-1/${sha256("out.txt")}\\?`));
    const download = await request(url);
    assert.equal(download.status, 200);
    assert.equal(download.text, "built for 22-alpine\n");
  });

  it("reads an expansion's log and artifact through the CLI, and its artifact through a Connect GET", async () => {
    const gateway = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
    const name = "test[node=20,os=linux]";
    const logs = await runCli(["logs", run.id, name, "--raw"], gateway);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /^values: MATRIX_NODE=20 MATRIX_OS=linux \(node 20 on linux\)$/m);
    const artifact = await runCli(["artifact", run.id, name, "out.txt"], gateway);
    assert.equal(artifact.code, 0, artifact.stderr);
    assert.equal(artifact.stdout, "built for 20-linux\n");
    const listed = await runCli(["artifacts", run.id], gateway);
    assert.equal(listed.code, 0, listed.stderr);
    for (const expansion of expansions) assert.match(listed.stdout, new RegExp(`^${expansion.replace(/[[\]]/g, "\\$&")} {2}attempt 1 .* out\\.txt$`, "m"));

    // A read RPC from curl, the job's name in the query string.
    const message = encodeURIComponent(JSON.stringify({ runId: run.id, job: name, name: "out.txt" }));
    const got = await request(`${otto.gatewayUrl}/otto.v1.ArtifactService/GetArtifactUrl?encoding=json&message=${message}`);
    assert.equal(got.status, 200, got.text);
    const answer = JSON.parse(got.text);
    assert.deepEqual([answer.artifact.job, answer.artifact.name], [name, "out.txt"]);
    assert.equal((await request(answer.url)).text, "built for 20-linux\n");
  });
});
