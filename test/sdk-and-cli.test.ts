// The SDK and the `otto` CLI against a whole Otto of real processes.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { toJson } from "@bufbuild/protobuf";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { PipelineSchema } from "@otto/gen/v1/pipeline_pb";
import { RunSchema } from "@otto/gen/v1/run_pb";
import { parsePipeline, formatProblems } from "@otto/parser/parse-pipeline";
import { followLogs, pipeline, RunState, submit, submitAndWait, waitForRun, type Run } from "@otto/sdk";
import { startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { runCli, type CliResult } from "./helpers/cli.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const helloYaml = await readFile(join(repoRoot, "examples/hello.otto.yml"), "utf8");

const time = (ts: Timestamp | undefined): number => {
  assert.ok(ts, "timestamp is set");
  return timestampDate(ts).getTime();
};

function jobOf(run: Run, name: string) {
  const job = run.jobs.find((j) => j.name === name);
  assert.ok(job, `run ${run.id} has a job "${name}"`);
  return job;
}

// Every job and step of the run succeeded with exit code 0.
function assertAllSucceeded(run: Run): void {
  assert.equal(run.state, RunState.SUCCEEDED, `run ${run.id}`);
  for (const job of run.jobs) {
    assert.equal(job.state, RunState.SUCCEEDED, `job ${job.name}: ${job.message}`);
    for (const step of job.steps) {
      assert.equal(step.state, RunState.SUCCEEDED, `step ${job.name}/${step.name}`);
      assert.equal(step.exitCode, 0, `exit code of ${job.name}/${step.name}`);
    }
  }
}

// The whole log of a finished job, as lines.
async function readWholeLog(otto: TestOtto, runId: string, job: string): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of followLogs(otto.client, runId, job, { follow: false })) lines.push(line);
  return lines;
}

const show = (r: CliResult) => `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

describe("the SDK and the otto CLI", { timeout: 300_000 }, () => {
  let otto: TestOtto;
  let scratch: string;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "otto-sdk-cli-"));
    // Every log goes to S3, however small (log-archive.test.ts covers those kept in Postgres).
    otto = await startTestOtto({ agents: 1, agentSlots: 2, env: { OTTO_LOG_INLINE_MAX_BYTES: "0" } });
  });
  after(async () => {
    if (otto && process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it("submitAndWait runs examples/hello.otto.yml to SUCCEEDED", async () => {
    const run = await submitAndWait(otto.client, helloYaml);
    assert.equal(run.name, "hello");
    assertAllSucceeded(run);
    assert.deepEqual(
      run.jobs.map((j) => [j.name, j.needs, j.steps.map((s) => s.name)]),
      [
        ["build", [], ["compile", "make"]],
        ["lint", [], ['echo "linting in parallel with build"']],
        ["test", ["build", "lint"], ['for i in 1 2 3; do echo "test $i passed"']],
      ],
    );
    for (const job of run.jobs) assert.equal(job.agentId, "agent-1", `agent of ${job.name}`);
    const testStarted = time(jobOf(run, "test").startedAt);
    assert.ok(testStarted >= time(jobOf(run, "build").finishedAt), "test starts after build");
    assert.ok(testStarted >= time(jobOf(run, "lint").finishedAt), "test starts after lint");
    assert.ok(time(run.finishedAt) >= time(jobOf(run, "test").finishedAt));

    const testLog = await readWholeLog(otto, run.id, "test");
    assert.deepEqual(
      testLog.filter((l) => / \| test \d passed$/.test(l)).map((l) => l.split(" | ")[1]),
      ["test 1 passed", "test 2 passed", "test 3 passed"],
    );
  });

  it("the pipeline builder makes the same IR as the YAML parser, and it runs", async () => {
    const yaml = [
      "name: built",
      "jobs:",
      "  prepare:",
      "    runs-on: [linux]",
      '    env: { STAGE: prep, LEVEL: "3" }',
      "    steps:",
      "      - name: greet",
      '        run: echo "prepare $STAGE $LEVEL $WHO"',
      "        timeout: 2m",
      "        env: { WHO: builder }",
      "      - run: |",
      "          echo one",
      "          echo two",
      "  check:",
      "    needs: [prepare]",
      "    steps:",
      '      - run: test "$OTTO_JOB$STAGE" = check',
      "",
    ].join("\n");
    const parsed = parsePipeline(yaml);
    assert.ok(parsed.ok, parsed.ok ? "" : formatProblems(parsed.problems, "built.yml"));

    const built = pipeline("built")
      .job("prepare", {
        runsOn: ["linux"],
        env: { STAGE: "prep", LEVEL: "3" },
        steps: [
          { name: "greet", run: 'echo "prepare $STAGE $LEVEL $WHO"', timeout: "2m", env: { WHO: "builder" } },
          "echo one\necho two\n",
        ],
      })
      .job("check", { needs: ["prepare"], steps: ['test "$OTTO_JOB$STAGE" = check'] })
      .build();

    const builtJson = toJson(PipelineSchema, built);
    assert.deepEqual(builtJson, toJson(PipelineSchema, parsed.pipeline));
    // And the IR is what it should be, not merely the same mistake twice.
    assert.deepEqual(builtJson, {
      name: "built",
      jobs: [
        {
          name: "prepare",
          runsOn: ["linux"],
          env: { STAGE: "prep", LEVEL: "3" },
          steps: [
            { name: "greet", run: 'echo "prepare $STAGE $LEVEL $WHO"', timeout: "120s", env: { WHO: "builder" } },
            { name: "echo one", run: "echo one\necho two\n" },
          ],
        },
        {
          name: "check",
          needs: ["prepare"],
          steps: [{ name: 'test "$OTTO_JOB$STAGE" = check', run: 'test "$OTTO_JOB$STAGE" = check' }],
        },
      ],
    });

    const run = await submitAndWait(otto.client, built);
    assert.equal(run.name, "built");
    assertAllSucceeded(run);
    assert.deepEqual(
      run.jobs.map((j) => [j.name, j.needs, j.steps.map((s) => s.name)]),
      [
        ["prepare", [], ["greet", "echo one"]],
        ["check", ["prepare"], ['test "$OTTO_JOB$STAGE" = check']],
      ],
    );
    const log = await readWholeLog(otto, run.id, "prepare");
    assert.ok(log.some((l) => l.endsWith(" greet | prepare prep 3 builder")), `job and step env reach the step:\n${log.join("\n")}`);
    assert.ok(log.some((l) => l.endsWith(" echo one | two")), `the multi-line step runs whole:\n${log.join("\n")}`);
  });

  it("followLogs streams a job's log live and ends when the job does", async () => {
    const yaml = [
      "name: live",
      "jobs:",
      "  count:",
      "    steps:",
      "      - name: count",
      '        run: echo "line 1"; for i in 2 3 4 5; do sleep 0.5; echo "line $i"; done',
      "",
    ].join("\n");
    const submitted = await submit(otto.client, yaml);
    const received: Array<{ line: string; at: number }> = [];
    const deadline = AbortSignal.timeout(60_000);
    try {
      for await (const line of followLogs(otto.client, submitted.id, "count", { follow: true, signal: deadline })) {
        received.push({ line, at: Date.now() });
      }
    } catch (err) {
      if (deadline.aborted) assert.fail(`followLogs did not end by itself within 60 s; got:\n${received.map((r) => r.line).join("\n")}`);
      throw err;
    }
    const endedAt = Date.now();

    const output = received.filter((r) => / count \| line \d$/.test(r.line));
    assert.deepEqual(
      output.map((r) => r.line.split(" | ")[1]),
      ["line 1", "line 2", "line 3", "line 4", "line 5"],
      received.map((r) => r.line).join("\n"),
    );
    assert.match(received.at(-1)!.line, / count \| exited with code 0 \(\d+ ms\)$/, `the log runs to the step's end:\n${received.map((r) => r.line).join("\n")}`);

    const run = await waitForRun(otto.client, submitted.id);
    assertAllSucceeded(run);
    const jobFinished = time(jobOf(run, "count").finishedAt);
    assert.ok(
      output[0].at <= jobFinished - 1_000,
      `"line 1" arrived ${jobFinished - output[0].at} ms before the job finished; a live stream gets it about 2 s before`,
    );
    assert.ok(endedAt >= jobFinished, `the stream ended ${jobFinished - endedAt} ms before the job finished`);

    // After the job, the log is archived: the chunks' texts are gone from
    // Postgres (their rows stay as the index) and a plain read serves the
    // very same lines from object storage.
    const db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    try {
      // The archive is made in the objects service's background, once the log closed.
      const logs = await waitFor("the log archived", async () => {
        const { rows } = await db.query("SELECT state, object_key FROM objects.logs WHERE run_id = $1 AND job = 'count'", [run.id]);
        return rows[0]?.object_key !== "" && rows;
      });
      assert.deepEqual(logs, [{ state: "closed", object_key: `logs/${run.id}/count/attempt-1.log.zst` }]);
      const { rows: chunks } = await db.query(
        "SELECT count(*)::int AS n FROM objects.log_chunks WHERE run_id = $1 AND (zstd IS NOT NULL OR text IS NOT NULL)",
        [run.id],
      );
      assert.equal(chunks[0].n, 0);
    } finally {
      await db.end();
    }
    assert.deepEqual(await readWholeLog(otto, run.id, "count"), received.map((r) => r.line));
  });

  describe("the otto CLI", () => {
    let gateway: Record<string, string>;
    // The run of examples/hello.otto.yml that the first test makes with the CLI.
    let helloRunId: string | undefined;
    const helloRun = (): string => {
      assert.ok(helloRunId, "needs the run made by 'run FILE --follow'");
      return helloRunId;
    };

    before(() => {
      gateway = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
    });

    it("run FILE --follow prints the logs live and the final summary", async () => {
      const r = await runCli(["run", "examples/hello.otto.yml", "--follow"], gateway);
      assert.equal(r.code, 0, show(r));
      const id = r.stdout.match(/^run ([0-9a-f-]{36}) submitted$/m)?.[1];
      assert.ok(id, show(r));
      helloRunId = id;
      assert.match(r.stdout, /^\[build\] \S+Z compile \| hi from \S+$/m);
      assert.match(r.stdout, /^\[build\] \S+Z make \| made app$/m);
      assert.match(r.stdout, /^\[lint\] \S+Z .* \| linting in parallel with build$/m);
      assert.match(r.stdout, /^\[test\] \S+Z .* \| test 3 passed$/m);
      assert.match(r.stdout, /^-- job build: RUNNING \(attempt 1 on agent agent-1\)$/m);
      assert.match(r.stdout, /^-- run: SUCCEEDED \(all jobs succeeded\)$/m);
      const summary = r.stdout.slice(r.stdout.indexOf(`run ${id} (hello): SUCCEEDED\n`));
      assert.equal(
        summary,
        [
          `run ${id} (hello): SUCCEEDED`,
          "  job build: SUCCEEDED",
          "    step compile: SUCCEEDED (exit 0)",
          "    step make: SUCCEEDED (exit 0)",
          "  job lint: SUCCEEDED",
          '    step echo "linting in parallel with build": SUCCEEDED (exit 0)',
          "  job test: SUCCEEDED",
          '    step for i in 1 2 3; do echo "test $i passed": SUCCEEDED (exit 0)',
          "",
        ].join("\n"),
        "the summary comes last",
      );
      assert.equal(r.stderr, "");
      const { run } = await otto.client.runs.getRun({ runId: id });
      assertAllSucceeded(run!);
    });

    it("runs lists the run", async () => {
      const id = helloRun();
      const r = await runCli(["runs"], gateway);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, new RegExp(`^${id}  SUCCEEDED  \\d{4}-\\d\\d-\\d\\dT\\S+Z  hello$`, "m"));
      const filtered = await runCli(["runs", "--pipeline", "hello", "--state", "succeeded"], gateway);
      assert.equal(filtered.code, 0, show(filtered));
      assert.match(filtered.stdout, new RegExp(`^${id}  SUCCEEDED  `, "m"));
      assert.doesNotMatch(filtered.stdout, /FAILED|CANCELED|RUNNING|QUEUED/, "only SUCCEEDED runs");
      assert.ok(filtered.stdout.trim().split("\n").every((line) => line.endsWith("  hello")), filtered.stdout);
      for (const other of [["--state", "FAILED", "--pipeline", "hello"], ["--pipeline", "not-hello"]]) {
        const none = await runCli(["runs", ...other], gateway);
        assert.equal(none.code, 0, show(none));
        assert.doesNotMatch(none.stdout, new RegExp(id), other.join(" "));
      }
      const bad = await runCli(["runs", "--state", "finished"], gateway);
      assert.equal(bad.code, 2, show(bad));
      assert.match(bad.stderr, /--state takes a run state \(queued, running, succeeded, failed, canceled, waiting, skipped\), not "finished"/);
    });

    it("get RUN prints the run's jobs and steps", async () => {
      const id = helloRun();
      const r = await runCli(["get", id], gateway);
      assert.equal(r.code, 0, show(r));
      const lines = r.stdout.split("\n");
      assert.equal(lines[0], `run ${id} (hello): SUCCEEDED`);
      for (const job of ["build", "lint", "test"]) assert.ok(lines.includes(`  job ${job}: SUCCEEDED`), `${job} in\n${r.stdout}`);
      assert.ok(lines.includes("    step compile: SUCCEEDED (exit 0)"), r.stdout);
    });

    it("logs RUN JOB prints the job's log", async () => {
      const id = helloRun();
      const r = await runCli(["logs", id, "build"], gateway);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, /^\S+Z compile \| hi from \S+$/m);
      assert.match(r.stdout, /^\S+Z make \| made app$/m);
      const expected = await readWholeLog(otto, id, "build");
      assert.equal(r.stdout, expected.map((l) => `${l}\n`).join(""));
    });

    it("run FILE --follow exits 1 when the run fails", async () => {
      const file = join(scratch, "failing.otto.yml");
      await writeFile(file, "name: failing\njobs:\n  boom:\n    steps:\n      - name: explode\n        run: echo about to fail; exit 3\n");
      const r = await runCli(["run", file, "--follow"], gateway);
      assert.equal(r.code, 1, show(r));
      assert.match(r.stdout, /^\[boom\] \S+Z explode \| about to fail$/m);
      assert.match(r.stdout, /^run [0-9a-f-]{36} \(failing\): FAILED$/m);
      assert.match(r.stdout, /^    step explode: FAILED \(exit 3\)$/m);
    });

    it("cancel of a finished run exits 0 and leaves the run as it was", async () => {
      const id = helloRun();
      const was = await otto.client.runs.getRun({ runId: id });
      const r = await runCli(["cancel", id], gateway);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, new RegExp(`^run ${id}: SUCCEEDED`, "m"));
      const now = await otto.client.runs.getRun({ runId: id });
      assert.equal(now.run!.state, RunState.SUCCEEDED);
      assert.deepEqual(toJson(RunSchema, now.run!), toJson(RunSchema, was.run!), "the run is unchanged");
    });

    it("run of a bad pipeline file exits non-zero with line:column errors", async () => {
      const file = join(scratch, "broken.otto.yml");
      await writeFile(file, "name: broken\njobs:\n  build:\n    stepz:\n      - run: make\n");
      const r = await runCli(["run", file], gateway);
      assert.notEqual(r.code, 0, show(r));
      assert.equal(r.signal, null, show(r));
      assert.match(r.stderr, /:4:5: unknown key 'stepz'.*did you mean 'steps'\?/);
      assert.doesNotMatch(r.stdout, /submitted/);
    });

    it("--url takes precedence over OTTO_URL", async () => {
      const unreachable = { ...gateway, OTTO_URL: "https://127.0.0.1:1" };
      const id = helloRun();
      const r = await runCli(["--url", otto.gatewayUrl, "get", id], unreachable);
      assert.equal(r.code, 0, show(r));
      assert.match(r.stdout, new RegExp(`^run ${id} \\(hello\\): SUCCEEDED$`, "m"));
      const without = await runCli(["get", id], unreachable);
      assert.notEqual(without.code, 0, `OTTO_URL is used without --url\n${show(without)}`);
    });

    it("prints usage and exits non-zero without arguments", async () => {
      const r = await runCli([], gateway);
      assert.notEqual(r.code, 0, show(r));
      assert.equal(r.signal, null, show(r));
      assert.match(r.stderr, /^usage: otto \[--url URL\] \[--token TOKEN\] \[--ca FILE\] COMMAND/);
      assert.equal(r.stdout, "");
    });

    it("token create, list and revoke: a scoped token works until it is revoked", async () => {
      const created = await runCli(["token", "create", "ci reader", "--scope", "runs:read", "--ttl", "3600"], gateway);
      assert.equal(created.code, 0, show(created));
      const token = created.stdout.trim();
      assert.match(token, /^otto_api_\S+$/);
      const id = created.stderr.match(/^token ([0-9a-f-]{36}) \(runs:read\) made; it is shown only now:$/m)?.[1];
      assert.ok(id, show(created));
      const asReader = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN: token };
      assert.equal((await runCli(["runs"], asReader)).code, 0);
      const refused = await runCli(["cancel", helloRun()], asReader);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /needs the scope runs:write \[PermissionDenied\]/);
      const listed = await runCli(["token", "list"], gateway);
      assert.match(listed.stdout, new RegExp(`^${id}  api    live     ci reader  \\[runs:read\\]$`, "m"));
      assert.doesNotMatch(listed.stdout, /otto_api_/);
      assert.equal((await runCli(["token", "revoke", id], gateway)).code, 0);
      const revoked = await runCli(["runs"], asReader);
      assert.notEqual(revoked.code, 0);
      assert.match(revoked.stderr, /unknown, expired or revoked \[Unauthenticated\]/);
      assert.match((await runCli(["token", "list"], gateway)).stdout, new RegExp(`^${id}  api    revoked  ci reader`, "m"));
    });

    it("artifacts lists a run's artifacts and artifact writes one to stdout", async () => {
      const ir = pipeline("cli-artifacts").job("make", { artifacts: ["out/a.txt"], steps: ["mkdir out && printf 'artifact bytes' > out/a.txt"] }).build();
      const run = await submitAndWait(otto.client, ir);
      assert.equal(run.state, RunState.SUCCEEDED);
      const listed = await runCli(["artifacts", run.id], gateway);
      assert.equal(listed.code, 0, show(listed));
      assert.match(listed.stdout, /^make {2}attempt 1 {2} +14 {2}out\/a\.txt$/m);
      const fetched = await runCli(["artifact", run.id, "make", "out/a.txt"], gateway);
      assert.equal(fetched.code, 0, show(fetched));
      assert.equal(fetched.stdout, "artifact bytes");
    });

    it("secret set (value from stdin), list and delete", async () => {
      const set = await runCli(["secret", "set", "CLI_SECRET"], gateway, "from-stdin-123\n");
      assert.equal(set.code, 0, show(set));
      const listed = await runCli(["secret", "list"], gateway);
      assert.match(listed.stdout, /^CLI_SECRET$/m);
      assert.doesNotMatch(listed.stdout, /from-stdin/);
      const yaml = "name: s\njobs:\n  one:\n    secrets: [CLI_SECRET]\n    steps:\n      - run: test \"$CLI_SECRET\" = from-stdin-123\n";
      const run = await submitAndWait(otto.client, yaml);
      assert.equal(run.state, RunState.SUCCEEDED, "the trailing newline from stdin is not part of the value");
      assert.equal((await runCli(["secret", "delete", "CLI_SECRET"], gateway)).code, 0);
      assert.doesNotMatch((await runCli(["secret", "list"], gateway)).stdout, /CLI_SECRET/);
    });
  });
});
