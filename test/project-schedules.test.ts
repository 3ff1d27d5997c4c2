// Projects from the command line, and schedules: `otto project create`
// prints the webhook URL and secret once; a schedule runs the branch's tip
// once per tick with two coordinators alive, and stops when deleted.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { waitForRun, RunState } from "@otto/sdk";
import { runCli } from "./helpers/cli.ts";
import { createTestRepo, type TestRepo } from "./helpers/git-repo.ts";
import { startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("projects from the CLI, and schedules", () => {
  let otto: TestOtto;
  let repo: TestRepo;
  let tip: string;
  let db: pg.Client;
  let cli: Record<string, string>;

  before(async () => {
    otto = await startTestOtto({ coordinators: 2, agents: 1, env: { OTTO_CRON_CHECK_SECONDS: "1" } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    repo = await createTestRepo(await stepsSharedDir(otto, "repos"));
    tip = await repo.commit({ ".otto.yml": "name: nightly\njobs:\n  build:\n    steps: [{run: 'test -n \"$OTTO_SHA\"'}]\n" }, "pipeline");
    cli = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await repo?.remove();
    await otto?.stopAndClean();
  });

  it("otto project create prints the webhook URL and the secret once; list, get and a bad flag say what they should", async () => {
    const created = await runCli(["project", "create", "nightly", "--repo", repo.url, "--forge", "gitea", "--forge-api", "https://gitea.invalid/api/v1"], cli);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, new RegExp(`webhook URL: ${otto.gatewayUrl}/hooks/gitea/nightly`));
    assert.match(created.stdout, /webhook secret: [0-9a-f]{64}/);
    const got = await runCli(["project", "get", "nightly"], cli);
    assert.equal(got.code, 0, got.stderr);
    assert.doesNotMatch(got.stdout, /webhook secret/);
    assert.match((await runCli(["project", "list"], cli)).stdout, /^nightly  file:\/\//m);
    const again = await runCli(["project", "create", "nightly", "--repo", repo.url], cli);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists already \[AlreadyExists\]/);
    const badRepo = await runCli(["project", "create", "other", "--repo", "--upload-pack=touch"], cli);
    assert.equal(badRepo.code, 2);
    assert.match(badRepo.stderr, /repo_url (must be|may not)/);
    const noForgeApi = await runCli(["project", "create", "other", "--repo", repo.url, "--forge", "gitea"], cli);
    assert.match(noForgeApi.stderr, /forge.api_url is required for gitea/);
  });

  it("runs the branch's tip once per tick with two coordinators alive, and no more once deleted", async () => {
    const badCron = await runCli(["schedule", "create", "nightly", "--cron", "every minute please"], cli);
    assert.equal(badCron.code, 2);
    assert.match(badCron.stderr, /cron/);
    const made = await runCli(["schedule", "create", "nightly", "--cron", "* * * * *"], cli);
    assert.equal(made.code, 0, made.stderr);
    const id = /^schedule ([0-9a-f-]{36}):/.exec(made.stdout)?.[1];
    assert.ok(id, made.stdout);
    assert.match((await runCli(["schedule", "list", "nightly"], cli)).stdout, new RegExp(`${id}  nightly  "\\* \\* \\* \\* \\*"`));

    const { runs } = await waitFor(
      "a scheduled run",
      async () => {
        const listed = await otto.client.runs.listRuns({ project: "nightly" });
        return listed.runs.length > 0 ? listed : undefined;
      },
      120_000,
      250,
    );
    const run = await waitForRun(otto.client, runs[0].id);
    assert.equal(run.state, RunState.SUCCEEDED, run.message);
    assert.deepEqual([run.source?.event, run.source?.branch, run.source?.sha], ["schedule", "main", tip]);
    const number = run.source?.number;
    assert.match((await runCli(["runs"], cli)).stdout, new RegExp(`^${run.id}  SUCCEEDED .* nightly  nightly #${number} main ${tip.slice(0, 7)}$`, "m"));
    assert.match((await runCli(["get", run.id], cli)).stdout, new RegExp(`project nightly #${number}, schedule of main at ${tip.slice(0, 12)}`));

    // Every tick's job done, each made one run: one job and one run per tick.
    await waitFor("the schedule's jobs to be done", async () => {
      const { rows } = await db.query("SELECT count(*)::int AS n FROM pgboss.job WHERE name = 'project-schedule' AND state <> 'completed'");
      return rows[0].n === 0;
    });
    const { rows: ticks } = await db.query(
      "SELECT date_trunc('minute', created_on) AS tick, count(*)::int AS jobs FROM pgboss.job WHERE name = 'project-schedule' GROUP BY 1 ORDER BY 1",
    );
    const { rows: made2 } = await db.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE project = 'nightly' AND source->>'event' = 'schedule'");
    assert.ok(ticks.length >= 1);
    assert.deepEqual(ticks.map((t) => t.jobs), ticks.map(() => 1), "one job per tick");
    assert.equal(made2[0].n, ticks.length, "one run per tick");

    const deleted = await runCli(["schedule", "delete", id], cli);
    assert.equal(deleted.code, 0, deleted.stderr);
    const { rows: left } = await db.query("SELECT count(*)::int AS n FROM pgboss.schedule WHERE name = 'project-schedule'");
    assert.equal(left[0].n, 0, "pg-boss keeps no schedule of it");
    assert.equal((await runCli(["schedule", "list"], cli)).stdout, "");
  });
});
