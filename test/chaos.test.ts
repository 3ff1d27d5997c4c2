// Chaos on real processes: coordinators killed with -9 and paused with
// SIGSTOP, an agent killed mid-step, and locks that must stay exclusive
// through all of it. Every check reads what the steps themselves wrote to
// marker files and what Postgres holds, not only what the API says.
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as pause } from "node:timers/promises";
import pg from "pg";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { pipeline, RunState, runStateName, submit, waitForRun, watchRun, type Run, type RunEvent, type RunJob } from "@otto/sdk";
import { fenceShard, FencedError, shardOf } from "@otto/coordinator/shards";
import { isAlive, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { hostPidOfStep } from "./helpers/host-processes.ts";
import { assertState, jobOf, journalOf } from "./helpers/run-assertions.ts";

const finalStates: number[] = [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED];

// ---------------------------------------------------------------------------
// 1. Chaos: coordinators killed every 1-3 s and one agent killed while 44
//    random DAG runs are in flight.
// ---------------------------------------------------------------------------

interface PlannedJob {
  name: string;
  needs: string[];
  steps: number;
  locks: string[];
}
interface PlannedRun {
  id: string;
  jobs: PlannedJob[];
}

const chaosLocks = ["deploy-a", "deploy-b"];
const coordinatorNames = ["coordinator-1", "coordinator-2", "coordinator-3"];
const agentNames = ["agent-1", "agent-2", "agent-3"];

describe("chaos: coordinators and an agent killed with -9 while runs are in flight", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  let failed = false;
  let mark = "";
  const seed = Number(process.env.OTTO_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = mulberry32(seed);
  const runs: PlannedRun[] = [];
  let finalRuns: Run[] = [];
  let killedAgent: string | undefined;
  let agentKilledAt: Date | undefined;
  let chaosDone = false;

  before(async () => {
    otto = await startTestOtto({ coordinators: 3, agents: 3, agentSlots: 2, env: { OTTO_TASK_LEASE_MS: "3000" } });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 3 });
    mark = await stepsSharedDir(otto, "chaos");
  });
  afterEach((t) => {
    if (!t.passed) failed = true;
  });
  after(async () => {
    if (failed || process.exitCode) {
      console.log(`chaos seed: ${seed} (rerun with OTTO_CHAOS_SEED=${seed})`);
      if (otto) console.log(await tailOfLog(otto, 150));
    }
    await db?.end().catch(() => {});
    await otto?.stopAndClean();
    if (mark) await rm(mark, { recursive: true, force: true });
  });

  it("every run of random DAGs SUCCEEDS through 8-12 coordinator kills and an agent kill", async (t) => {
    t.diagnostic(`seed ${seed}`);
    // Plan 44 runs of 3-6 jobs; each job needs a random subset of earlier ones.
    for (let r = 0; r < 44; r++) {
      const jobs: PlannedJob[] = [];
      const count = 3 + Math.floor(random() * 4);
      for (let j = 0; j < count; j++) {
        const needs = jobs.filter(() => random() < 0.35).map((job) => job.name);
        const roll = random();
        const locks = roll < 0.15 ? ["deploy-a"] : roll < 0.28 ? ["deploy-b"] : roll < 0.32 ? ["deploy-a", "deploy-b"] : [];
        jobs.push({ name: `j${j}`, needs, steps: 1 + Math.floor(random() * 3), locks });
      }
      runs.push({ id: "", jobs });
    }
    const build = (index: number, planned: PlannedRun) => {
      let builder = pipeline(`chaos-${index}`);
      for (const job of planned.jobs) {
        builder = builder.job(job.name, {
          needs: job.needs,
          env: { MARK: mark },
          locks: job.locks,
          retry: { max: 3, agentLost: true },
          steps: Array.from({ length: job.steps }, (_, step) => ({
            name: `s${step}`,
            run: stepScript(step, job.locks, job.locks.length > 0 ? 0.1 + Math.floor(random() * 3) / 10 : 0),
          })),
        });
      }
      return builder.build();
    };
    // Submitted in four parallel batches before the chaos starts: SubmitRun
    // is not idempotent, so a submit cut off by a kill could not be told
    // apart from one that was lost.
    for (let batch = 0; batch < 4; batch++) {
      const indexes = Array.from({ length: 11 }, (_, i) => batch * 11 + i);
      const submitted = await Promise.all(indexes.map((i) => submit(otto.client, build(i, runs[i]))));
      submitted.forEach((run, i) => (runs[indexes[i]].id = run.id));
    }
    const runIds = runs.map((r) => r.id);
    const unfinished = async () =>
      Number((await db.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE id = ANY($1) AND finished_at IS NULL", [runIds])).rows[0].n);

    // The chaos: kill -9 a random live coordinator every 1-3 s (the
    // launcher restarts it), and once, mid-way, an agent running a task.
    const target = 8 + Math.floor(random() * 5);
    const agentKillAfter = 2 + Math.floor(random() * 4);
    const kills: Array<{ name: string; pid: number; inFlight: number }> = [];
    for (let round = 0; kills.length < target && round < 40; round++) {
      await pause(1000 + random() * 2000);
      const alive = coordinatorNames.filter((name) => otto.supervisor.pid(name) !== undefined);
      if (alive.length < 2) continue; // never take the last one down
      const name = alive[Math.floor(random() * alive.length)];
      const pid = otto.supervisor.pid(name)!;
      process.kill(pid, "SIGKILL");
      kills.push({ name, pid, inFlight: await unfinished() });
      if (kills.length === agentKillAfter) {
        // Prefer an agent in the middle of a step of a job that holds a lock.
        const { rows } = await db.query(
          `SELECT t.agent_id FROM coordinator.tasks t JOIN coordinator.jobs j ON j.run_id = t.run_id AND j.name = t.job
           WHERE t.status = 'assigned' AND t.started ORDER BY cardinality(j.locks) DESC, random() LIMIT 1`,
        );
        killedAgent = rows[0]?.agent_id ?? agentNames[Math.floor(random() * agentNames.length)];
        const agentPid = otto.supervisor.pid(killedAgent!);
        assert.ok(agentPid, `${killedAgent} is running`);
        process.kill(agentPid, "SIGKILL");
        agentKilledAt = new Date();
        t.diagnostic(`killed ${killedAgent} (pid ${agentPid}) while it ran a task: ${rows.length > 0}`);
      }
    }
    t.diagnostic(`kills: ${kills.map((k) => `${k.name}(${k.inFlight} runs in flight)`).join(", ")}`);
    await writeFile(join(mark, "calm"), "");
    assert.ok(killedAgent, "an agent was killed");
    const duringFlight = kills.filter((k) => k.inFlight > 0).length;
    assert.ok(duringFlight >= 8, `at least 8 coordinator kills hit runs in flight (got ${duringFlight} of ${kills.length})`);

    // Every run final (polled in SQL, so a stuck one is named), then as the SDK sees it.
    await waitFor(
      "every run to be final",
      async () => {
        const left = await unfinished();
        return left === 0 ? true : undefined;
      },
      150_000,
      250,
    ).catch(async (err) => {
      const { rows } = await db.query(
        `SELECT r.id, j.name, j.state, j.message FROM coordinator.runs r JOIN coordinator.jobs j ON j.run_id = r.id
         WHERE r.id = ANY($1) AND r.finished_at IS NULL AND j.finished_at IS NULL`,
        [runIds],
      );
      throw new Error(`${(err as Error).message}; unfinished jobs: ${JSON.stringify(rows)}`);
    });
    finalRuns = await Promise.all(runIds.map((id) => waitForRun(otto.client, id, AbortSignal.timeout(30_000))));
    chaosDone = true;

    const failures = finalRuns
      .filter((run) => run.state !== RunState.SUCCEEDED)
      .map((run) => ({
        run: run.id,
        state: runStateName(run.state),
        jobs: run.jobs.filter((j) => j.state !== RunState.SUCCEEDED).map((j) => `${j.name} ${runStateName(j.state)}: ${j.message}`),
      }));
    if (failures.length > 0) {
      // The evidence, before the log goes: what the processes said about
      // these runs, every server-side unexpected error, and the kills.
      const log = (await readFile(otto.logFile, "utf8")).split("\n");
      const failedIds = failures.map((f) => f.run);
      const evidence = log.filter(
        (l) =>
          (/"level":"(warn|error)"/.test(l) && failedIds.some((id) => l.includes(id))) ||
          l.includes('"unexpected error"') ||
          / exited \(/.test(l),
      );
      assert.fail(`runs that did not succeed:\n${JSON.stringify(failures, null, 2)}\nrelated log lines:\n${evidence.map((l) => l.slice(0, 600)).join("\n")}`);
    }
  });

  it("each step ran at most once per attempt, and exactly once in each job's final attempt", async () => {
    assert.ok(chaosDone, "the chaos phase completed");
    const runIds = runs.map((r) => r.id);
    const lines = (await readFile(join(mark, "marks"), "utf8")).split("\n").filter((l) => l !== "");
    const counts = new Map<string, number>();
    const malformed: string[] = [];
    for (const line of lines) {
      if (!/^[0-9a-f-]{36}\/j\d\/\d+\/\d+$/.test(line)) malformed.push(line);
      counts.set(line, (counts.get(line) ?? 0) + 1);
    }
    assert.deepEqual(malformed, [], "every marker line is run/job/attempt/step");
    const twice = [...counts].filter(([, n]) => n > 1);
    assert.deepEqual(twice, [], "no (run, job, attempt, step) ran twice");

    const { rows } = await db.query("SELECT run_id, job, attempt FROM coordinator.tasks WHERE run_id = ANY($1)", [runIds]);
    const finalAttempt = new Map(rows.map((r) => [`${r.run_id}/${r.job}`, Number(r.attempt)]));
    const missing: string[] = [];
    const expected = new Set<string>();
    // A job that SUCCEEDED ran every step in its final attempt. (That every
    // run, hence every job, succeeded is the first test's assertion; a job
    // that failed or never started is reported there, not again here.)
    const succeeded = new Set(
      finalRuns.flatMap((run) => run.jobs.filter((j) => j.state === RunState.SUCCEEDED).map((j) => `${run.id}/${j.name}`)),
    );
    for (const run of runs) {
      for (const job of run.jobs) {
        if (!succeeded.has(`${run.id}/${job.name}`)) continue;
        const attempt = finalAttempt.get(`${run.id}/${job.name}`);
        for (let step = 0; step < job.steps; step++) {
          const key = `${run.id}/${job.name}/${attempt}/${step}`;
          expected.add(key);
          if (counts.get(key) !== 1) missing.push(key);
        }
      }
    }
    assert.ok(succeeded.size > 0, "some jobs succeeded");
    assert.deepEqual(missing, [], "every step of every succeeded job's final attempt left exactly one line");
    // Lines of earlier attempts are fine (they were lost or retried); lines
    // of attempts the coordinator never handed out, or of unknown steps, are not.
    const strange = [...counts.keys()].filter((line) => {
      const [runId, job, attempt, step] = line.split("/");
      const planned = runs.find((r) => r.id === runId)?.jobs.find((j) => j.name === job);
      const last = finalAttempt.get(`${runId}/${job}`);
      return !planned || last === undefined || Number(attempt) > last || Number(attempt) < 1 || Number(step) >= planned.steps;
    });
    assert.deepEqual(strange, [], "no line from an attempt that was never handed out");
    const retried = rows.filter((r) => Number(r.attempt) > 1).length;
    console.log(`# ${lines.length} step lines, ${expected.size} in final attempts, ${retried} jobs retried`);
  });

  it("journals are gap-free from 1 with exactly one final run event", async () => {
    assert.ok(chaosDone, "the chaos phase completed");
    const { rows } = await db.query(
      `SELECT r.id, r.last_seq::int AS last_seq, count(j.seq)::int AS n, min(j.seq)::int AS lo, max(j.seq)::int AS hi,
         count(*) FILTER (WHERE j.job = '' AND j.step = '' AND j.state = ANY($2))::int AS finals
       FROM coordinator.runs r LEFT JOIN coordinator.journal j ON j.run_id = r.id
       WHERE r.id = ANY($1) GROUP BY r.id, r.last_seq`,
      [runs.map((r) => r.id), finalStates],
    );
    assert.equal(rows.length, runs.length, "every run is in the database");
    const bad = rows.filter((r) => r.n === 0 || r.lo !== 1 || r.hi !== r.n || r.hi !== r.last_seq || r.finals !== 1);
    assert.deepEqual(bad, [], "runs whose journal has a gap, a duplicate or not exactly one final event");
  });

  it("leaves no reservation behind", async () => {
    assert.ok(chaosDone, "the chaos phase completed");
    const { rows } = await db.query("SELECT run_id, job, attempt, kind, name FROM coordinator.reservations");
    assert.deepEqual(rows, [], "coordinator.reservations is empty once every run is final");
  });

  it("never let two holders of a lock overlap", async () => {
    assert.ok(chaosDone, "the chaos phase completed");
    // Which agent each attempt was claimed by, and when, from the journal.
    const { rows } = await db.query(
      "SELECT run_id, job, message, at FROM coordinator.journal WHERE run_id = ANY($1) AND message LIKE 'attempt % on agent %'",
      [runs.map((r) => r.id)],
    );
    const agentOf = new Map<string, string>();
    const claimedAt = new Map<string, Date>();
    for (const row of rows) {
      const m = /^attempt (\d+) on agent ([^;\s]+)/.exec(row.message);
      if (m) {
        agentOf.set(`${row.run_id}/${row.job}/${m[1]}`, m[2]);
        claimedAt.set(`${row.run_id}/${row.job}/${m[1]}`, row.at);
      }
    }
    const onKilledAgent = (attemptKey: string) =>
      killedAgent !== undefined &&
      agentKilledAt !== undefined &&
      agentOf.get(attemptKey) === killedAgent &&
      claimedAt.get(attemptKey)! < agentKilledAt;
    let unpaired = 0;
    let intervals = 0;
    for (const lock of chaosLocks) {
      const text = await readFile(join(mark, `lock-${lock}`), "utf8").catch(() => "");
      const holders = new Map<string, { start?: bigint; end?: bigint }>();
      const problems: string[] = [];
      for (const line of text.split("\n").filter((l) => l !== "")) {
        const m = /^(start|end) (\S+) (\S+) (\d+)$/.exec(line);
        if (!m || m[2] !== lock) {
          problems.push(`malformed line: ${line}`);
          continue;
        }
        const [, kind, , holder, ns] = m;
        const entry = holders.get(holder) ?? {};
        holders.set(holder, entry);
        if (kind === "start") {
          if (entry.start !== undefined) problems.push(`${holder} started twice`);
          entry.start = BigInt(ns);
        } else {
          if (entry.end !== undefined) problems.push(`${holder} ended twice`);
          entry.end = BigInt(ns);
        }
      }
      // Pairing start and end per holder (run/job/attempt/step). A step of
      // an agent killed with -9 is orphaned, not killed: it runs in its own
      // process group, writes nothing to the closed pipes, and so normally
      // finishes and writes its `end` well within the 0.75-3 s before the
      // dead attempt's lease lapses and the coordinator releases the lock.
      // A `start` without an `end` therefore means the step's shell died
      // between the two lines, which only the agent kill can explain: it is
      // tolerated for attempts the killed agent had claimed before it died
      // (per the journal), and as its end is unknown it is checked as a point that
      // must not lie inside another holder's interval. An `end` without a
      // `start`, or an unpaired start of any other attempt, fails.
      const closed: Array<{ holder: string; start: bigint; end: bigint }> = [];
      const open: Array<{ holder: string; start: bigint }> = [];
      for (const [holder, { start, end }] of holders) {
        const attemptKey = holder.split("/").slice(0, 3).join("/");
        if (start === undefined) problems.push(`${holder} ended without starting`);
        else if (end === undefined) {
          if (onKilledAgent(attemptKey)) open.push({ holder, start });
          else problems.push(`${holder} (on ${agentOf.get(attemptKey) ?? "an unknown agent"}) started and never ended`);
        } else if (end < start) problems.push(`${holder} ended before it started`);
        else closed.push({ holder, start, end });
      }
      closed.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
      for (let i = 1; i < closed.length; i++) {
        const previous = closed.slice(0, i).reduce((latest, c) => (c.end > latest.end ? c : latest));
        if (closed[i].start <= previous.end) {
          problems.push(`${closed[i].holder} started ${closed[i].start} while ${previous.holder} held it until ${previous.end}`);
        }
      }
      for (const o of open) {
        const inside = closed.find((c) => c.start <= o.start && o.start <= c.end);
        if (inside) problems.push(`${o.holder} (unpaired) started ${o.start} while ${inside.holder} held it`);
      }
      assert.deepEqual(problems, [], `lock ${lock}`);
      intervals += closed.length;
      unpaired += open.length;
    }
    console.log(`# ${intervals} lock intervals checked, ${unpaired} unpaired starts from the killed agent`);
    assert.ok(intervals > 20, `locked steps ran (${intervals} intervals)`);
  });

  it("ends with all 16 shards leased by live coordinators, spread over all three", async () => {
    assert.ok(chaosDone, "the chaos phase completed");
    const host = hostname();
    const shardsOf = async () => {
      const live = coordinatorNames.map((name) => ({ name, pid: otto.supervisor.pid(name) })).filter((c) => c.pid && isAlive(c.pid));
      const { rows } = await db.query("SELECT shard, owner FROM coordinator.shards WHERE lease_expires_at > now()");
      const byCoordinator = new Map(live.map((c) => [c.name, rows.filter((r) => String(r.owner).startsWith(`${host}-${c.pid}-`)).length]));
      return { live, rows, byCoordinator, owned: [...byCoordinator.values()].reduce((a, b) => a + b, 0) };
    };
    await waitFor("all 16 shards to be leased by live coordinators", async () => ((await shardsOf()).owned === 16 ? true : undefined), 20_000);
    const final = await waitFor(
      "every coordinator to be up and own some shards",
      async () => {
        const s = await shardsOf();
        return s.live.length === 3 && s.owned === 16 && [...s.byCoordinator.values()].every((n) => n > 0) ? s : undefined;
      },
      30_000,
    );
    assert.equal(final.owned, 16);
  });
});

// One step of a chaos job: a marker line, and for a job holding locks a
// start/end pair per lock around a short sleep. Output goes to files only,
// so an orphaned step never meets a closed pipe.
function stepScript(step: number, locks: string[], sleepSeconds: number): string {
  const id = `$OTTO_RUN_ID/$OTTO_JOB/$OTTO_ATTEMPT/${step}`;
  // Until the chaos is over each step takes up to 2 s more, so that the runs
  // are still in flight while the coordinators are killed, however fast Otto is.
  const lines = [
    `echo "${id}" >> "$MARK/marks"`,
    `i=0; while [ ! -f "$MARK/calm" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done`,
  ];
  for (const lock of locks) lines.push(`echo "start ${lock} ${id} $(date +%s%N)" >> "$MARK/lock-${lock}"`);
  if (sleepSeconds > 0) lines.push(`sleep ${sleepSeconds.toFixed(1)}`);
  for (const lock of locks) lines.push(`echo "end ${lock} ${id} $(date +%s%N)" >> "$MARK/lock-${lock}"`);
  return lines.join("\n");
}

// ---------------------------------------------------------------------------
// 2. Zombie: a coordinator paused with SIGSTOP loses its shards, and when it
//    wakes up it is fenced out and re-joins under new epochs.
// ---------------------------------------------------------------------------

interface ShardRow {
  shard: number;
  owner: string | null;
  epoch: number;
  live: boolean;
}

describe("a paused (zombie) coordinator", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  let failed = false;
  let pausedPid: number | undefined;
  let lost: ShardRow[] = [];
  const random = mulberry32(Number(process.env.OTTO_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31)));

  before(async () => {
    otto = await startTestOtto({ coordinators: 2, agents: 1 });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 3 });
  });
  afterEach((t) => {
    if (!t.passed) failed = true;
  });
  after(async () => {
    if (pausedPid) process.kill(pausedPid, "SIGCONT");
    if (failed || process.exitCode) console.log(await tailOfLog(otto, 120));
    await db?.end().catch(() => {});
    await otto?.stopAndClean();
  });

  const shards = async (): Promise<ShardRow[]> =>
    (await db.query("SELECT shard, owner, epoch::int AS epoch, coalesce(lease_expires_at > now(), false) AS live FROM coordinator.shards ORDER BY shard"))
      .rows;
  const memberPrefix = (pid: number) => `${hostname()}-${pid}-`;

  it("loses its shards while stopped, runs of those shards still succeed, and it re-joins fenced and cleanly", async (t) => {
    const pid1 = otto.supervisor.pid("coordinator-1")!;
    const pid2 = otto.supervisor.pid("coordinator-2")!;
    const url1 = otto.supervisor.info().find((c) => c.name === "coordinator-1")!.url!;
    const owns = (rows: ShardRow[], pid: number) => rows.filter((r) => r.live && r.owner?.startsWith(memberPrefix(pid)));
    await waitFor("the two coordinators to share the 16 shards", async () => {
      const rows = await shards();
      return owns(rows, pid1).length > 0 && owns(rows, pid2).length > 0 && owns(rows, pid1).length + owns(rows, pid2).length === 16;
    });

    // Pause it, preferably in the middle of a transaction (the hardest case:
    // it holds row locks, and Postgres ends its session after
    // idle_in_transaction_session_timeout while it sleeps). A coordinator is
    // in a transaction only a few per cent of the time when idle, so stop it,
    // look at its backends, and let it go again until one is caught.
    let caughtInTransaction = false;
    for (let attempt = 0; attempt < 400 && !caughtInTransaction; attempt++) {
      process.kill(pid1, "SIGSTOP");
      pausedPid = pid1;
      await waitFor("coordinator-1 to be stopped", () => processState(pid1) === "T", 5_000, 1);
      const { rows } = await db.query(
        "SELECT 1 FROM pg_stat_activity WHERE client_port = ANY($1) AND xact_start IS NOT NULL",
        [tcpPortsOf(pid1)],
      );
      caughtInTransaction = rows.length > 0;
      if (!caughtInTransaction) {
        process.kill(pid1, "SIGCONT");
        pausedPid = undefined;
        await pause(random() * 15);
      }
    }
    if (!pausedPid) {
      process.kill(pid1, "SIGSTOP");
      pausedPid = pid1;
      await waitFor("coordinator-1 to be stopped", () => processState(pid1) === "T", 5_000, 1);
    }
    t.diagnostic(`coordinator-1 paused ${caughtInTransaction ? "inside" : "outside"} a transaction`);
    // Nothing it owns can change hands except by a takeover, so this is
    // what it held when it stopped (leases may already have lapsed).
    const beforePause = await shards();
    lost = beforePause.filter((r) => r.owner?.startsWith(memberPrefix(pid1)));
    assert.ok(lost.length > 0, "coordinator-1 owned shards when it stopped");
    t.diagnostic(`coordinator-1 owned shards ${lost.map((r) => r.shard).join(",")}`);

    await waitFor(
      "coordinator-2 to take coordinator-1's shards under higher epochs",
      async () => {
        const rows = await shards();
        return lost.every((old) => {
          const now = rows.find((r) => r.shard === old.shard)!;
          return now.live && now.owner!.startsWith(memberPrefix(pid2)) && now.epoch > old.epoch;
        });
      },
      15_000,
    );

    // A stopped process still listed in the registry takes calls and never
    // answers them. It drops out when its registry lease (10 s) lapses;
    // clients cache the list for up to 1 s, so wait until that is past too.
    await waitFor(
      "the registry to have dropped coordinator-1 for over a second",
      async () => {
        const { rows } = await db.query(
          "SELECT 1 FROM registry.instances WHERE service = 'coordinator' AND url = $1 AND lease_expires_at > now() - interval '1500 milliseconds'",
          [url1],
        );
        return rows.length === 0;
      },
      20_000,
    );

    // Runs until at least two of them belong to the shards coordinator-1 lost.
    const lostSet = new Set(lost.map((r) => r.shard));
    const submitted: string[] = [];
    for (let i = 0; i < 16 && submitted.filter((id) => lostSet.has(shardOf(id))).length < 2; i++) {
      const run = await submit(
        otto.client,
        pipeline(`while-paused-${i}`)
          .job("a", { steps: ["true"] })
          .job("b", { needs: ["a"], steps: ["true", "true"] })
          .build(),
      );
      submitted.push(run.id);
    }
    const onLostShards = submitted.filter((id) => lostSet.has(shardOf(id)));
    assert.ok(onLostShards.length >= 2, `runs on coordinator-1's old shards were submitted (${onLostShards.length} of ${submitted.length})`);
    const done = await Promise.all(submitted.map((id) => waitForRun(otto.client, id, AbortSignal.timeout(60_000))));
    for (const run of done) assert.equal(runStateName(run.state), runStateName(RunState.SUCCEEDED), `run ${run.id} while coordinator-1 was paused`);
    assert.equal(processState(pid1), "T", "coordinator-1 was stopped all along");

    // Everything these runs are in Postgres, before the zombie wakes up.
    const snapshot = await runSnapshot(db, submitted);

    const logOffset = (await stat(otto.logFile)).size;
    process.kill(pid1, "SIGCONT");
    pausedPid = undefined;
    const linesSinceContinue = async () =>
      (await readFile(otto.logFile)).subarray(logOffset).toString("utf8").split("\n").filter((l) => l.startsWith("coordinator-1 "));

    // The same process must come back: a crash and a restart by the
    // launcher is not a clean re-join.
    const rejoined = await waitFor(
      "coordinator-1 to own shards again under new epochs, the two owning all 16",
      async () => {
        if (otto.supervisor.pid("coordinator-1") !== pid1) return { crashed: true as const };
        const rows = await shards();
        const mine = owns(rows, pid1);
        const together = mine.length + owns(rows, pid2).length;
        return mine.length > 0 && together === 16 ? { crashed: false as const, rows, mine } : undefined;
      },
      30_000,
    );
    if (rejoined.crashed) {
      assert.fail(`coordinator-1 exited after SIGCONT instead of re-joining; its output since:\n${(await linesSinceContinue()).join("\n")}`);
    }
    for (const shard of rejoined.mine) {
      const old = beforePause.find((r) => r.shard === shard.shard)!;
      assert.ok(shard.epoch > old.epoch, `shard ${shard.shard} is owned by coordinator-1 at epoch ${shard.epoch} > ${old.epoch} before the pause`);
    }

    // The woken coordinator wrote nothing to the runs of the shards it had
    // lost (or any other): their rows and journals are exactly as they were.
    const logLines = (await linesSinceContinue())
      .map((l) => l.slice("coordinator-1 ".length))
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l));
    const fenced = logLines.filter((l) => /fenced out/.test(l.msg));
    t.diagnostic(`coordinator-1 after SIGCONT: ${logLines.length} log lines, ${fenced.length} "fenced out"`);
    assert.deepEqual(await runSnapshot(db, submitted), snapshot, "runs, jobs, steps, tasks and journals unchanged by the woken coordinator");
    const { rows: journals } = await db.query(
      `SELECT run_id, count(*)::int AS n, min(seq)::int AS lo, max(seq)::int AS hi FROM coordinator.journal GROUP BY run_id`,
    );
    for (const j of journals) assert.ok(j.lo === 1 && j.hi === j.n, `journal of ${j.run_id} is gap-free: ${JSON.stringify(j)}`);
    const { rows: states } = await db.query("SELECT id, state FROM coordinator.runs");
    assert.ok(states.length >= submitted.length);
    for (const r of states) assert.equal(runStateName(r.state), runStateName(RunState.SUCCEEDED), `run ${r.id}`);
  });

  it("fenceShard refuses the old owner at the old epoch, and admits the current one", async () => {
    assert.ok(lost.length > 0, "the pause test recorded the lost shards");
    const old = lost[0];
    const client = await db.connect();
    try {
      const now = (await client.query("SELECT owner, epoch::int AS epoch FROM coordinator.shards WHERE shard = $1", [old.shard])).rows[0];
      assert.ok(now.epoch > old.epoch, "the shard has a newer epoch");
      const attempt = async (epoch: number, member: string) => {
        await client.query("BEGIN");
        try {
          await fenceShard(client, old.shard, epoch, member);
        } finally {
          await client.query("ROLLBACK");
        }
      };
      await assert.rejects(attempt(old.epoch, old.owner!), FencedError, "old owner, old epoch");
      // The paused coordinator re-joins under the same member id and may have
      // taken this very shard again, at a new epoch: then it is the owner.
      if (now.owner !== old.owner) {
        await assert.rejects(attempt(now.epoch, old.owner!), FencedError, "old owner, current epoch");
        await assert.rejects(attempt(old.epoch, now.owner), FencedError, "current owner, old epoch");
      }
      // The current owner at the current epoch passes (read again on each
      // try, as a rebalance may move the shard in between).
      await waitFor("the current owner to pass the fence", async () => {
        const current = (await client.query("SELECT owner, epoch::int AS epoch FROM coordinator.shards WHERE shard = $1", [old.shard])).rows[0];
        await attempt(current.epoch, current.owner);
        return true;
      }, 10_000);
    } finally {
      client.release();
    }
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

// The local ports of a process's TCP sockets (its Postgres connections
// among them), from /proc: its socket inodes, looked up in /proc/net/tcp*.
function tcpPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns.length > 9 && inodes.has(columns[9])) ports.push(parseInt(columns[1].split(":")[1], 16));
    }
  }
  return ports;
}

async function runSnapshot(db: pg.Pool, runIds: string[]) {
  const q = async (sql: string) => (await db.query(sql, [runIds])).rows;
  return {
    runs: await q("SELECT id, state, last_seq, started_at, finished_at, cancel_requested FROM coordinator.runs WHERE id = ANY($1) ORDER BY id"),
    jobs: await q("SELECT run_id, name, state, message, agent_id, started_at, finished_at FROM coordinator.jobs WHERE run_id = ANY($1) ORDER BY run_id, name"),
    steps: await q("SELECT run_id, job, position, state, exit_code, finished_at FROM coordinator.steps WHERE run_id = ANY($1) ORDER BY run_id, job, position"),
    tasks: await q("SELECT run_id, job, status, attempt, agent_id FROM coordinator.tasks WHERE run_id = ANY($1) ORDER BY run_id, job"),
    journal: await q("SELECT run_id, seq, job, step, state, message FROM coordinator.journal WHERE run_id = ANY($1) ORDER BY run_id, seq"),
  };
}

// ---------------------------------------------------------------------------
// 3. Lock contention: two jobs that could run side by side are serialised by
//    the lock they share; a job without it runs alongside.
// ---------------------------------------------------------------------------

describe("lock contention", () => {
  let otto: TestOtto;
  let failed = false;
  let mark = "";

  before(async () => {
    otto = await startTestOtto({ agents: 2, agentSlots: 2 });
    mark = await stepsSharedDir(otto, "locks");
  });
  afterEach((t) => {
    if (!t.passed) failed = true;
  });
  after(async () => {
    if (failed || process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    if (mark) await rm(mark, { recursive: true, force: true });
  });

  it("two holders of lock prod run one after the other while a lock-free job overlaps", async () => {
    const timed = `echo "start $(date +%s%N)" >> "$MARK/$LABEL"; sleep 1; echo "end $(date +%s%N)" >> "$MARK/$LABEL"`;
    const [first, second] = await Promise.all([
      submit(
        otto.client,
        pipeline("deploy-one")
          .job("deploy", { env: { MARK: mark, LABEL: "one" }, locks: ["prod"], steps: [{ name: "deploy", run: timed }] })
          .job("free", { env: { MARK: mark, LABEL: "free" }, steps: [{ name: "free", run: timed }] })
          .build(),
      ),
      submit(
        otto.client,
        pipeline("deploy-two")
          .job("deploy", { env: { MARK: mark, LABEL: "two" }, locks: ["prod"], steps: [{ name: "deploy", run: timed }] })
          .build(),
      ),
    ]);
    const [one, two] = await Promise.all([first, second].map((r) => waitForRun(otto.client, r.id, AbortSignal.timeout(60_000))));
    for (const run of [one, two]) assertState(run, RunState.SUCCEEDED);

    const read = async (label: string) => {
      const text = await readFile(join(mark, label), "utf8");
      const start = /start (\d+)/.exec(text);
      const end = /end (\d+)/.exec(text);
      assert.ok(start && end, `${label} recorded its start and end: ${text}`);
      return { start: BigInt(start[1]), end: BigInt(end[1]) };
    };
    const a = await read("one");
    const b = await read("two");
    const free = await read("free");
    const shown = JSON.stringify({ a, b, free }, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    assert.ok(a.end < b.start || b.end < a.start, `the two holders of prod did not overlap: ${shown}`);
    const overlaps = (x: { start: bigint; end: bigint }) => x.start < free.end && free.start < x.end;
    assert.ok(overlaps(a) || overlaps(b), `the job without the lock ran alongside a holder (capacity was there): ${shown}`);

    for (const run of [one, two]) {
      const events = await journalOf(otto, run.id);
      assert.ok(
        events.some((e) => e.job === "deploy" && /holds lock prod/.test(e.message)),
        `the journal of ${run.name} says its deploy holds lock prod: ${JSON.stringify(events.map((e) => e.message).filter(Boolean))}`,
      );
    }
    const freeEvents = (await journalOf(otto, one.id)).filter((e) => e.job === "free" && /attempt 1 on agent/.test(e.message));
    assert.equal(freeEvents.length, 1);
    assert.doesNotMatch(freeEvents[0].message, /lock/, "the free job holds no lock");
  });
});

// ---------------------------------------------------------------------------
// 4. Agent loss: a job allowed to retry on agent loss gets a second attempt;
//    one without a retry policy fails, saying the agent was lost.
// ---------------------------------------------------------------------------

describe("agent loss with and without a retry policy", () => {
  let otto: TestOtto;
  let failed = false;
  let mark = "";
  const orphans: number[] = [];

  before(async () => {
    otto = await startTestOtto({ agents: 2, agentSlots: 2, env: { OTTO_TASK_LEASE_MS: "3000" } });
    mark = await stepsSharedDir(otto, "agent-loss");
  });
  afterEach((t) => {
    if (!t.passed) failed = true;
  });
  after(async () => {
    // The steps of a killed agent live on, orphaned: take their whole process groups down.
    for (const pid of orphans) {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    if (failed || process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    if (mark) await rm(mark, { recursive: true, force: true });
  });

  // Records the attempt and the agent that runs it, then on the first attempt
  // sleeps until killed. Each job's script is its own, so that the host pid
  // of its shell can be found by its command line.
  const stepOf = (job: string) =>
    `echo "$OTTO_ATTEMPT $OTTO_AGENT_ID" >> "$MARK/${job}"; if [ "$OTTO_ATTEMPT" = 1 ]; then sleep 300; fi`;
  const attemptsOf = async (job: string) =>
    (await readFile(join(mark, job), "utf8").catch(() => ""))
      .split("\n")
      .filter((l) => /^\d+ \S+$/.test(l))
      .map((l) => {
        const [attempt, agent] = l.split(" ");
        const pid = Number(attempt) === 1 ? hostPidOfStep(stepOf(job)) : undefined;
        return { pid, attempt: Number(attempt), agent };
      });

  it("retries the job as attempt 2 after its agent is killed, and fails the one without retry", async () => {
    const withRetry = await submit(
      otto.client,
      pipeline("survivor").job("victim", { env: { MARK: mark }, retry: { max: 1, agentLost: true }, steps: [{ name: "sleep", run: stepOf("victim") }] }).build(),
    );
    const withoutRetry = await submit(
      otto.client,
      pipeline("casualty").job("doomed", { env: { MARK: mark }, steps: [{ name: "sleep", run: stepOf("doomed") }] }).build(),
    );
    // Both steps running; which agent runs each, per GetRun and per the step.
    const running = await waitFor("both steps to be running", async () => {
      const victim = await attemptsOf("victim");
      const doomed = await attemptsOf("doomed");
      if (victim.length !== 1 || doomed.length !== 1 || !victim[0].pid || !doomed[0].pid) return undefined;
      const { run: r1 } = await otto.client.runs.getRun({ runId: withRetry.id });
      const { run: r2 } = await otto.client.runs.getRun({ runId: withoutRetry.id });
      return { victim: victim[0], doomed: doomed[0], victimAgent: r1!.jobs[0].agentId, doomedAgent: r2!.jobs[0].agentId };
    });
    const victimPid = running.victim.pid!;
    const doomedPid = running.doomed.pid!;
    orphans.push(victimPid, doomedPid);
    assert.equal(running.victim.attempt, 1);
    assert.equal(running.victim.agent, running.victimAgent, "GetRun names the agent that runs the victim");
    assert.equal(running.doomed.agent, running.doomedAgent, "GetRun names the agent that runs the doomed job");
    const victimAgents = [...new Set([running.victimAgent, running.doomedAgent])];
    const killedAt = Date.now();
    for (const agent of victimAgents) {
      const pid = otto.supervisor.pid(agent);
      assert.ok(pid, `${agent} has a pid`);
      process.kill(pid, "SIGKILL");
    }
    // The killed agents' steps go with them: their step launcher sees its input end.
    await waitFor("the killed agents' steps to stop", () => !isAlive(victimPid) && !isAlive(doomedPid), 5_000);

    const [survivor, casualty] = await Promise.all(
      [withRetry, withoutRetry].map((r) => waitForRun(otto.client, r.id, AbortSignal.timeout(60_000))),
    );

    assertState(survivor, RunState.SUCCEEDED);
    const victimJob = jobOf(survivor, "victim");
    assertState(victimJob, RunState.SUCCEEDED);
    const victimAttempts = await attemptsOf("victim");
    assert.deepEqual(victimAttempts.map((a) => a.attempt), [1, 2], "the victim's step ran in attempt 1, then once in attempt 2");
    assert.equal(victimJob.agentId, victimAttempts[1].agent, "GetRun names the agent of attempt 2");
    const retryDelay = date(victimJob.startedAt).getTime() - killedAt;
    assert.ok(retryDelay < 8_000, `attempt 2 started ${retryDelay} ms after the kill: within the 3 s lease and a claim, not a long poll's timeout`);
    const survivorEvents = await journalOf(otto, survivor.id);
    const retrying = survivorEvents.find((e) => e.job === "victim" && /lost/.test(e.message) && /retrying/.test(e.message));
    assert.ok(retrying, `the journal says the agent was lost and the job retried: ${JSON.stringify(survivorEvents.map((e) => e.message))}`);
    assert.match(retrying.message, new RegExp(`attempt 1 failed \\(agent ${running.victimAgent} lost.*retrying as attempt 2`));
    assert.ok(survivorEvents.some((e) => e.job === "victim" && /^attempt 2 on agent agent-\d/.test(e.message)), "attempt 2 was claimed");

    assertState(casualty, RunState.FAILED);
    const doomedJob = jobOf(casualty, "doomed");
    assertState(doomedJob, RunState.FAILED);
    assert.match(doomedJob.message, new RegExp(`agent ${running.doomedAgent} lost`));
    assert.deepEqual((await attemptsOf("doomed")).map((a) => a.attempt), [1], "the doomed job was not retried");
    const casualtyEvents = await journalOf(otto, casualty.id);
    assert.ok(!casualtyEvents.some((e) => /retrying/.test(e.message)), "nothing was retried in the run without a retry policy");
    assert.ok(date(casualty.finishedAt).getTime() - date(doomedJob.startedAt).getTime() < 30_000, "the loss was noticed within the lease, not after the sleep");
  });
});

// ---------------------------------------------------------------------------

function date(timestamp: Timestamp | undefined): Date {
  assert.ok(timestamp, "timestamp is set");
  return timestampDate(timestamp);
}

// A small seeded PRNG, so that a failing chaos run can be replayed.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
