import { create } from "@bufbuild/protobuf";
import { WaitingForSchema, type Run, type WaitingFor } from "@otto/gen/v1/run_pb";
import type { Instance } from "@otto/gen/v1/registry_service_pb";
import type { Pool } from "@otto/kit/db";
import { placeInLineSql } from "./engine/concurrency-group.ts";
import { isFinal, RunState } from "./engine/states.ts";

// Why each job of these runs that has not started waits, in the order a
// person would look: its run waits in its concurrency group's line, its needs, an approval, no live agent with its labels,
// a lock another job holds, every matching slot busy; else an agent is about
// to take it. Read as things are now (GetRun), from the jobs' rows, the
// reservations and the agents the registry knows.
export async function explainWaits(pool: Pool, runs: Run[], liveAgents: () => Promise<Instance[]>): Promise<void> {
  const queued = runs.flatMap((run) => run.jobs.filter((job) => job.state === RunState.QUEUED || job.state === RunState.WAITING).map((job) => ({ run, job })));
  if (queued.length === 0) return;
  const runIds = [...new Set(queued.map(({ run }) => run.id))];
  const { rows: jobs } = await pool.query(
    "SELECT run_id, name, runs_on, locks, lock_limits FROM coordinator.jobs WHERE run_id = ANY($1) AND state = $2",
    [runIds, RunState.QUEUED],
  );
  const locksWanted = [...new Set(jobs.flatMap((job) => job.locks as string[]))];
  const [{ rows: lines }, { rows: locks }, { rows: slots }, agents] = await Promise.all([
    pool.query(
      `SELECT r.id, r.concurrency_group AS name, r.concurrency_limit AS limit, ${placeInLineSql} AS place
       FROM coordinator.runs r WHERE r.id = ANY($1) AND r.admitted = false`,
      [runIds],
    ),
    // Every place of the locks wanted (reservations.ts lockPlaces).
    pool.query("SELECT split_part(name, '#', 1) AS name, run_id, job FROM coordinator.reservations WHERE kind = 'lock' AND split_part(name, '#', 1) = ANY($1) ORDER BY id", [
      locksWanted,
    ]),
    pool.query("SELECT name, count(*)::int AS busy FROM coordinator.reservations WHERE kind = 'slot' GROUP BY name"),
    liveAgents().catch(() => undefined),
  ]);
  const busy = new Map<string, number>(slots.map((row) => [row.name, row.busy]));
  const rowOf = new Map(jobs.map((job) => [`${job.run_id}/${job.name}`, job as JobRow]));
  const lineOf = new Map(lines.map((line) => [line.id as string, line as { name: string; limit: number; place: string }]));
  for (const { run, job } of queued) {
    const line = lineOf.get(run.id);
    if (line) {
      const text = `concurrency group ${line.name} is full (at most ${line.limit} at once): place ${line.place} in line`;
      job.waitingFor = create(WaitingForSchema, { reason: "concurrency", text });
      continue;
    }
    const states = new Map(run.jobs.map((j) => [j.name, j.state]));
    job.waitingFor = reasonFor(job, states, rowOf.get(`${run.id}/${job.name}`), { run: run.id, locks, busy, agents });
  }
}

interface JobRow {
  runs_on: string[];
  locks: string[];
  lock_limits: Record<string, number>;
}

function reasonFor(
  job: Run["jobs"][number],
  states: Map<string, RunState>,
  row: JobRow | undefined,
  now: { run: string; locks: Array<{ name: string; run_id: string; job: string }>; busy: Map<string, number>; agents: Instance[] | undefined },
): WaitingFor {
  const reason = (code: string, text: string) => create(WaitingForSchema, { reason: code, text });
  if (job.state === RunState.WAITING) return reason("approval", job.message);
  const unfinished = job.needs.filter((need) => !isFinal(states.get(need) ?? RunState.QUEUED));
  if (unfinished.length > 0) return reason("needs", `waiting for ${unfinished.join(", ")} to finish`);
  const labels = row?.runs_on ?? [];
  const withLabels = labels.length > 0 ? ` with the labels [${labels.join(", ")}]` : "";
  if (now.agents) {
    const matching = now.agents.filter((agent) => labels.every((label) => agent.labels.includes(label)));
    if (matching.length === 0) return reason("no_agent", `no live agent${withLabels}`);
    for (const lock of row?.locks ?? []) {
      const holders = now.locks.filter((held) => held.name === lock && !(held.run_id === now.run && held.job === job.name));
      const limit = row?.lock_limits[lock] ?? 1;
      if (holders.length < limit) continue;
      if (limit === 1) return reason("lock", `lock ${lock} is held by run ${holders[0].run_id}, job ${holders[0].job}`);
      const by = holders.slice(0, 3).map((held) => `run ${held.run_id}, job ${held.job}`).join("; ");
      return reason("lock", `all ${limit} places of lock ${lock} are held, by ${by}${holders.length > 3 ? "; …" : ""}`);
    }
    const slots = matching.reduce((sum, agent) => sum + agent.slots, 0);
    if (matching.every((agent) => (now.busy.get(agent.instanceId) ?? 0) >= agent.slots)) {
      return reason("slots", `all ${slots} slots of the ${matching.length} live agent${matching.length === 1 ? "" : "s"}${withLabels} are busy`);
    }
  }
  return reason("agent", `waiting for an agent${withLabels} to take it`);
}
