import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { PipelineSchema } from "@otto/gen/v1/pipeline_pb";
import { addJobs } from "@otto/coordinator/engine/add-jobs";
import { cancelRun } from "@otto/coordinator/engine/cancel-run";
import { completeTask } from "@otto/coordinator/engine/complete-task";
import { rerunRun } from "@otto/coordinator/engine/rerun-run";
import { submitRun } from "@otto/coordinator/engine/submit-run";
import type { ClaimedTask } from "@otto/coordinator/engine/claim-task";
import { claim, pipelineOf, startEngineDb, type EngineDb, type JobSpec } from "../helpers/engine-db.ts";
import { jobRow, jobStates, journalSince, refused, RunState, runRow, scope, snapshot, tasksOf } from "./engine-rows.ts";

// addJobs: a step of a running job adds jobs to its run. Under the run's
// lock, while the step's attempt is live, the jobs are checked with the
// run's (names new to it, needs of its jobs or their own, no cycle, at most
// 500 jobs), stored, appended to the run's pipeline, journaled as added by
// that job and attempt, and the run advances: a job whose needs are done
// gets its task at once. A refusal adds nothing.

let db: EngineDb;
before(async () => {
  db = await startEngineDb();
});
after(() => db?.stop());

const { SUCCEEDED, FAILED } = RunState;
type Scope = ReturnType<typeof scope>;

function complete(task: ClaimedTask, state: RunState = SUCCEEDED) {
  return db.tx((client) => completeTask(client, db.boss, { taskId: task.id, attempt: task.attempt }, { state, message: "", steps: [] }));
}

// A run whose job "build" SUCCEEDED and whose job "gen" runs (attempt 1).
async function genRunning(extra: Record<string, JobSpec> = {}) {
  const s = scope(db);
  const runId = await s.submit({ build: {}, gen: { needs: ["build"] }, ...extra });
  const build = await claim(db, s.agent("a"));
  assert.equal(build?.job, "build");
  await complete(build!);
  const gen = await claim(db, s.agent("a"));
  assert.equal(gen?.job, "gen");
  return { s, runId, gen: gen! };
}

// The jobs as the gateway sends them: a pipeline of jobs alone, for the scope's agents.
function fragment(s: Scope, jobs: Record<string, JobSpec>) {
  const pipeline = pipelineOf(Object.fromEntries(Object.entries(jobs).map(([name, job]) => [name, { ...job, runsOn: [s.label] }])));
  pipeline.name = "";
  return pipeline;
}

function add(runId: string, s: Scope, jobs: Record<string, JobSpec>, by = { job: "gen", attempt: 1 }) {
  return db.tx((client) => addJobs(client, { runId, fragment: fragment(s, jobs), by, fileName: "more.yml" }));
}

async function pipelineJobs(runId: string): Promise<string[]> {
  const { rows } = await db.pool.query("SELECT jsonb_path_query_array(pipeline, '$.jobs[*].name') AS names FROM coordinator.runs WHERE id = $1", [runId]);
  return rows[0].names;
}

// Everything a refused call could have changed: the run's rows and its pipeline.
async function untouched(runId: string, refusal: () => Promise<unknown>, code: Code, pattern: RegExp): Promise<void> {
  const before = { rows: await snapshot(db, runId), pipeline: await pipelineJobs(runId) };
  await refused(refusal(), code, pattern);
  assert.deepEqual({ rows: await snapshot(db, runId), pipeline: await pipelineJobs(runId) }, before, "a refused call adds nothing");
}

test("added jobs are stored, journaled and advanced: one needing a job that succeeded gets a task at once, one needing the running job waits", async () => {
  const { s, runId, gen } = await genRunning();
  const before = await journalSince(db, runId, []);
  const result = await add(runId, s, { "after-build": { needs: ["build"], steps: ["echo after build"] }, "after-gen": { needs: ["gen"] }, solo: {} });
  assert.deepEqual(result, { added: ["after-build", "after-gen", "solo"], alreadyAdded: [] });
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", gen: "RUNNING", "after-build": "QUEUED", "after-gen": "QUEUED", solo: "QUEUED" });
  assert.deepEqual(await tasksOf(db, runId), { "after-build": "pending", build: "done", gen: "assigned", solo: "pending" }, "after-gen waits for gen");
  assert.deepEqual(await journalSince(db, runId, before), [
    "after-build QUEUED: added by job gen, attempt 1",
    "after-gen QUEUED: added by job gen, attempt 1",
    "solo QUEUED: added by job gen, attempt 1",
  ]);
  assert.equal((await jobRow(db, runId, "after-gen")).message, "added by job gen, attempt 1");
  assert.deepEqual(await pipelineJobs(runId), ["build", "gen", "after-build", "after-gen", "solo"]);

  // An agent gets an added job's steps from the run's pipeline.
  const next = await claim(db, s.agent("b"));
  assert.ok(next && ["after-build", "solo"].includes(next.job), `claimed ${next?.job}`);
  const spec = (await claim(db, s.agent("c")))!;
  const afterBuild = [next!, spec].find((task) => task.job === "after-build")!;
  assert.deepEqual((afterBuild.spec as { steps: unknown[] }).steps, [{ name: "echo after build", run: "echo after build" }]);

  // The run waits for what was added: gen's end readies after-gen, and the run ends with the last job.
  await complete(gen);
  assert.equal((await tasksOf(db, runId))["after-gen"], "pending");
  await complete(next!);
  await complete(spec);
  assert.equal((await runRow(db, runId)).state, RunState.RUNNING);
  await complete((await claim(db, s.agent("d")))!);
  assert.equal((await runRow(db, runId)).state, SUCCEEDED);
});

test("a job that failed before is skipped at once, as a pipeline's would be", async () => {
  const s = scope(db);
  const runId = await s.submit({ lint: {}, gen: {} });
  const first = (await claim(db, s.agent("a")))!;
  const second = (await claim(db, s.agent("b")))!;
  const [lint, gen] = first.job === "lint" ? [first, second] : [second, first];
  await complete(lint, FAILED);
  await add(runId, s, { "after-lint": { needs: ["lint"] }, report: { needs: ["lint"], if: "failure()" } }, { job: gen.job, attempt: gen.attempt });
  assert.deepEqual(await jobStates(db, runId), { lint: "FAILED", gen: "RUNNING", "after-lint": "SKIPPED", report: "QUEUED" });
  assert.equal((await tasksOf(db, runId)).report, "pending");
});

test("refused once the attempt is not live: after it ended, for another attempt, for a job without one", async () => {
  const { s, runId, gen } = await genRunning({ other: { needs: ["gen"] } });
  await untouched(runId, () => add(runId, s, { x: {} }, { job: "gen", attempt: 2 }), Code.FailedPrecondition, /attempt 2 of job gen in run .* has ended/);
  await untouched(runId, () => add(runId, s, { x: {} }, { job: "other", attempt: 1 }), Code.FailedPrecondition, /attempt 1 of job other in run .* has ended/);
  await untouched(runId, () => add(runId, s, { x: {} }, { job: "nope", attempt: 1 }), Code.FailedPrecondition, /has ended/);
  const other = randomUUID();
  await refused(add(other, s, { x: {} }), Code.NotFound, new RegExp(`run ${other} not found`));
  // Ended as it completes; the run still runs (other waits to be claimed).
  await complete(gen);
  assert.equal((await runRow(db, runId)).state, RunState.RUNNING);
  await untouched(runId, () => add(runId, s, { x: {} }), Code.FailedPrecondition, /attempt 1 of job gen in run .* has ended: its step token adds jobs only while that attempt runs/);
});

test("refused when the run is final or being canceled", async () => {
  const { s, runId, gen } = await genRunning();
  await db.tx((client) => cancelRun(client, runId));
  await untouched(runId, () => add(runId, s, { x: {} }), Code.FailedPrecondition, /is being canceled: no jobs are added to it/);
  await complete(gen, RunState.CANCELED);
  assert.equal((await runRow(db, runId)).state, RunState.CANCELED);
  await untouched(runId, () => add(runId, s, { x: {} }), Code.FailedPrecondition, /is CANCELED: jobs are added to a run only while it runs/);
});

test("refused, adding nothing, for a name the run has, an unknown need, a cycle, and jobs of their own making", async () => {
  const { s, runId } = await genRunning();
  await untouched(runId, () => add(runId, s, { fresh: {}, build: {} }), Code.InvalidArgument, /more\.yml: job 'build' is already a job of the run; give the new job another name$/);
  await untouched(
    runId,
    () => add(runId, s, { fresh: {}, deploy: { needs: ["biuld"] } }),
    Code.InvalidArgument,
    /more\.yml: unknown job 'biuld' in needs; did you mean 'build'\? \(job 'deploy'\)$/,
  );
  await untouched(runId, () => add(runId, s, { x: { needs: ["y"] }, y: { needs: ["x"] } }), Code.InvalidArgument, /more\.yml: cycle in needs: x -> y -> x/);
  await untouched(runId, () => add(runId, s, { x: { needs: ["x"] } }), Code.InvalidArgument, /job 'x' needs itself/);
  await untouched(runId, () => add(runId, s, { x: { steps: [] } }), Code.InvalidArgument, /more\.yml: job 'x' has no steps/);
  await untouched(runId, () => add(runId, s, {}), Code.InvalidArgument, /more\.yml: 'jobs' is empty/);
  const named = fragment(s, { x: {} });
  named.name = "sneaky";
  await untouched(
    runId,
    () => db.tx((client) => addJobs(client, { runId, fragment: named, by: { job: "gen", attempt: 1 }, fileName: "more.yml" })),
    Code.InvalidArgument,
    /a jobs fragment holds only 'jobs'/,
  );
});

test("a run holds at most 500 jobs: 200 from its pipeline, more added, and none past 500", async () => {
  const s = scope(db);
  const many = (prefix: string, count: number, spec: JobSpec = {}) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}${i}`, spec]));
  const runId = await s.submit({ gen: {}, ...many("p", 199, { needs: ["gen"] }) });
  const gen = (await claim(db, s.agent("a")))!;
  assert.equal(gen.job, "gen");
  await add(runId, s, many("a", 200, { needs: ["gen"] }));
  await untouched(runId, () => add(runId, s, many("b", 101, { needs: ["gen"] })), Code.InvalidArgument, /more\.yml: the run would have 501 jobs with these 101, at most 500 allowed$/);
  assert.deepEqual((await add(runId, s, many("b", 100, { needs: ["gen"] }))).added.length, 100);
  assert.equal(Object.keys(await jobStates(db, runId)).length, 500);
});

test("the same jobs again from the same job (a retried call or attempt) are left as they are; different ones are refused", async () => {
  const s = scope(db);
  const runId = await s.submit({ gen: { retry: { max: 1 } } });
  const first = (await claim(db, s.agent("a")))!;
  const jobs = { deploy: { needs: ["gen"], steps: ["./deploy.sh"] } };
  assert.deepEqual(await add(runId, s, jobs, { job: "gen", attempt: 1 }), { added: ["deploy"], alreadyAdded: [] });
  const before = await journalSince(db, runId, []);
  assert.deepEqual(await add(runId, s, jobs, { job: "gen", attempt: 1 }), { added: [], alreadyAdded: ["deploy"] });
  assert.deepEqual(await journalSince(db, runId, before), [], "nothing changed");

  await complete(first, FAILED);
  const second = (await claim(db, s.agent("b")))!;
  assert.equal(second.attempt, 2, "gen is retried");
  assert.deepEqual(await add(runId, s, { ...jobs, more: {} }, { job: "gen", attempt: 2 }), { added: ["more"], alreadyAdded: ["deploy"] });
  await untouched(
    runId,
    () => add(runId, s, { deploy: { needs: ["gen"], steps: ["./deploy.sh --force"] } }, { job: "gen", attempt: 2 }),
    Code.InvalidArgument,
    /job 'deploy' is already a job of the run/,
  );
});

test("a need of a matrix job of the run by its written name means all its expansions, with or without its artifacts", async () => {
  const s = scope(db);
  const pipeline = create(PipelineSchema, {
    name: "matrix",
    jobs: [
      { name: "gen", runsOn: [s.label], steps: [{ run: "true" }] },
      ...["20", "22"].map((node) => ({ name: `test[node=${node}]`, runsOn: [s.label], needs: ["gen"], matrix: [{ key: "node", value: node }], steps: [{ run: "true" }] })),
    ],
  });
  const { runId } = await submitRun(db.pool, pipeline, 1_000, randomUUID());
  await claim(db, s.agent("a"));
  const jobs = fragment(s, { report: { needs: ["test"] } });
  jobs.jobs[0].needsWithoutArtifacts = ["test"];
  await db.tx((client) => addJobs(client, { runId, fragment: jobs, by: { job: "gen", attempt: 1 }, fileName: "more.yml" }));
  const { rows } = await db.pool.query("SELECT needs FROM coordinator.jobs WHERE run_id = $1 AND name = 'report'", [runId]);
  assert.deepEqual(rows[0].needs, ["test[node=20]", "test[node=22]"]);
  const { rows: spec } = await db.pool.query("SELECT jsonb_path_query_first(pipeline, '$.jobs[*] ? (@.name == \"report\")') AS job FROM coordinator.runs WHERE id = $1", [runId]);
  assert.deepEqual(spec[0].job.needsWithoutArtifacts, ["test[node=20]", "test[node=22]"], "needs without artifacts too");
});

test("a rerun leaves out the jobs a step added, unless the job that added them is reused", async () => {
  const { s, runId, gen } = await genRunning();
  await add(runId, s, { deploy: { needs: ["gen"] }, notify: {} });
  await complete(gen);
  const tasks = [(await claim(db, s.agent("b")))!, (await claim(db, s.agent("c")))!];
  for (const task of tasks) await complete(task, task.job === "deploy" ? FAILED : SUCCEEDED);
  assert.deepEqual(await jobStates(db, runId), { build: "SUCCEEDED", gen: "SUCCEEDED", deploy: "FAILED", notify: "SUCCEEDED" });

  const rerun = (failedOnly: boolean) => db.tx((client) => rerunRun(client, db.boss, { runId, failedOnly, maxActiveRuns: 1_000 }));
  const whole = await rerun(false);
  assert.deepEqual(await jobStates(db, whole), { build: "QUEUED", gen: "QUEUED" }, "gen runs again, and adds them again");
  const failed = await rerun(true);
  assert.deepEqual(await jobStates(db, failed), { build: "SUCCEEDED", gen: "SUCCEEDED", deploy: "QUEUED", notify: "SUCCEEDED" });
  const { rows } = await db.pool.query("SELECT added_by FROM coordinator.jobs WHERE run_id = $1 AND name = 'deploy'", [failed]);
  assert.deepEqual(rows[0].added_by, { job: "gen", attempt: 1 }, "still known as added, for a rerun of the rerun");
});
