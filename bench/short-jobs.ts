import type { JsonApi } from "./json-api.ts";
import { cpuPer, perUnit } from "./cpu.ts";
import { rpcsPer } from "./rpc-counts.ts";

// What the machine has done so far: CPU by process, RPCs by process and
// method, Postgres commits.
export interface Sample {
  cpu: Record<string, number>;
  rpcs: Record<string, number>;
  commits: number;
  wakeups: Record<string, number>;
}

export interface ShortJobFigures {
  runs_per_s: number;
  submit_per_s: number;
  cpu_ms_per_run: number;
  otto_cpu_ms_per_run: number;
  cpu_ms_per_submit: number;
  otto_cpu_ms_per_submit: number;
  commits_per_run: number;
  commits_per_submit: number;
  wakeups_per_run: number;
  wakeups_per_submit: number;
}

export interface ShortJobDetails<S extends Sample = Sample> {
  figures: ShortJobFigures;
  // The samples taken before and after each phase.
  samples: { runs: [S, S]; submits: [S, S] };
  cpuPerRun: Record<string, number>;
  cpuPerSubmit: Record<string, number>;
  wakeupsPerRun: Record<string, number>;
  rpcsPerRun: Array<[string, number]>;
  rpcsPerSubmit: Array<[string, number]>;
}

// The pipeline of most CI work: one job of one quick step, as a file's text.
export const shortPipeline = `name: short
jobs:
  one:
    steps:
      - run: "true"
`;
// The same job for a label no agent has: it stays queued.
const unrunnablePipeline = `name: short
jobs:
  one:
    runs-on: [otto-bench-no-such-agent]
    steps:
      - run: "true"
`;

// Short runs through the public JSON API, `clients` callers at a time:
//  - runs: `runs` runs of `shortPipeline` submitted by the callers one after
//    another, as fast as each is answered, while the bench polls GetRun for
//    the oldest run not yet seen final; from the first submit to the last
//    run's end (its finishedAt);
//  - submits alone: as many submits of the same job for a label no agent
//    has, so that no agent works meanwhile; from the first submit to the
//    last answer. Those runs are then cancelled (not timed).
export async function measureShortJobs<S extends Sample>(options: {
  api: JsonApi;
  runs: number;
  clients: number;
  sample: () => Promise<S>;
  progress: (text: string) => void;
  // Runs done first and not measured: the system's connections, compiled
  // validation rules and optimised code then are those of a system that has
  // been working, as Otto's are after its first minute.
  warmup?: number;
}): Promise<ShortJobDetails<S>> {
  const { api, runs, clients, sample, progress, warmup = 0 } = options;

  if (warmup > 0) {
    progress(`short jobs: ${warmup} runs to warm up (not measured)`);
    await runAll(api, warmup, clients);
  }
  progress(`short jobs: ${runs} runs of one job of one step, ${clients} clients`);
  const before = await sample();
  const { t0, lastFinished } = await runAll(api, runs, clients);
  const after = await sample();

  progress(`short jobs: ${runs} submits alone (jobs no agent takes), ${clients} clients`);
  const queued: string[] = [];
  const beforeSubmits = await sample();
  const s0 = performance.now();
  await submitAll(api, unrunnablePipeline, runs, clients, (i, id) => (queued[i] = id));
  const submitSeconds = (performance.now() - s0) / 1000;
  const afterSubmits = await sample();
  await forEachConcurrently(queued, clients, (runId) => api.call("RunService/CancelRun", { runId }));
  await forEachConcurrently(queued, clients, (runId) => pollFinal(api, runId));

  return {
    figures: {
      runs_per_s: round(runs / ((lastFinished - t0) / 1000)),
      submit_per_s: round(runs / submitSeconds),
      cpu_ms_per_run: round((after.cpu.machine - before.cpu.machine) / runs),
      otto_cpu_ms_per_run: round((after.cpu.otto - before.cpu.otto) / runs),
      cpu_ms_per_submit: round((afterSubmits.cpu.machine - beforeSubmits.cpu.machine) / runs),
      otto_cpu_ms_per_submit: round((afterSubmits.cpu.otto - beforeSubmits.cpu.otto) / runs),
      commits_per_run: round((after.commits - before.commits) / runs),
      commits_per_submit: round((afterSubmits.commits - beforeSubmits.commits) / runs),
      wakeups_per_run: round((after.wakeups.otto - before.wakeups.otto) / runs),
      wakeups_per_submit: round((afterSubmits.wakeups.otto - beforeSubmits.wakeups.otto) / runs),
    },
    cpuPerRun: cpuPer(before.cpu, after.cpu, runs, true),
    cpuPerSubmit: cpuPer(beforeSubmits.cpu, afterSubmits.cpu, runs, true),
    wakeupsPerRun: Object.fromEntries(Object.entries(perUnit(before.wakeups, after.wakeups, runs, true)).map(([name, n]) => [name, round(n)])),
    rpcsPerRun: rpcsPer(before.rpcs, after.rpcs, runs),
    rpcsPerSubmit: rpcsPer(beforeSubmits.rpcs, afterSubmits.rpcs, runs),
    samples: { runs: [before, after], submits: [beforeSubmits, afterSubmits] },
  };
}

// `count` short runs submitted by `clients` callers while the oldest run not
// yet seen final is polled; when the first submit left and when the last run
// finished (its finishedAt).
async function runAll(api: JsonApi, count: number, clients: number) {
  const t0 = Date.now();
  const ids: Array<Promise<string>> = [];
  const resolvers: Array<(id: string) => void> = [];
  for (let i = 0; i < count; i++) ids.push(new Promise((resolve) => resolvers.push(resolve)));
  const submitting = submitAll(api, shortPipeline, count, clients, (i, id) => resolvers[i](id));
  let lastFinished = 0;
  for (const id of ids) {
    const runId = await id;
    const run = await pollFinal(api, runId);
    if (run.state !== "RUN_STATE_SUCCEEDED") throw new Error(`short run ${runId} ended ${run.state}`);
    lastFinished = Math.max(lastFinished, Date.parse(run.finishedAt));
  }
  await submitting;
  return { t0, lastFinished };
}

// `count` submits of `yaml` by `clients` callers, each submitting as soon as
// its previous submit is answered.
async function submitAll(api: JsonApi, yaml: string, count: number, clients: number, submitted: (i: number, id: string) => void) {
  await forEachConcurrently(Array.from({ length: count }, (_, i) => i), clients, async (i) => {
    const { run } = await api.call("RunService/SubmitRun", { pipelineYaml: yaml, fileName: "short.otto.yml" });
    submitted(i, run.id);
  });
}

async function forEachConcurrently<T>(items: T[], concurrency: number, work: (item: T) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const finalStates = ["RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELED"];

async function pollFinal(api: JsonApi, runId: string, intervalMs = 50, timeoutMs = 300_000) {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const { run } = await api.call("RunService/GetRun", { runId });
    if (finalStates.includes(run.state)) return run;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for run ${runId} to end`);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
