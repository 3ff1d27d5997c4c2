import { readdir, readFile } from "node:fs/promises";

const ticksPerSecond = 100;

// CPU milliseconds used so far by each named process, by this Otto's
// Postgres, its agents' step launchers and (as the CPU of their ended
// children) the steps' shells (see ottoProcesses), by the bench, in all
// ("otto"), and by the whole machine ("machine", all cores: other people's
// processes and the kernel's work for everyone included).
export async function cpuSnapshot(processes: Array<{ name: string; pid: number | undefined }>, postgresPid?: number): Promise<Record<string, number>> {
  const snapshot: Record<string, number> = { postgres: 0, launchers: 0, steps: 0 };
  for (const { name, ms, childrenMs } of await ottoProcesses(processes, postgresPid)) {
    snapshot[name] = (snapshot[name] ?? 0) + ms;
    if (name === "launchers") snapshot.steps += childrenMs;
  }
  snapshot.bench = (await cpuOf(process.pid)).ms;
  snapshot.otto = Object.values(snapshot).reduce((sum, ms) => sum + ms, 0);
  const cpu = (await readFile("/proc/stat", "utf8")).split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  snapshot.machine = ((user + nice + system + irq + softirq + steal) * 1000) / ticksPerSecond;
  return snapshot;
}

// Per unit between two snapshots, by process; processes of one kind
// (coordinator-1, coordinator-2, ...) are also summed under the kind's name
// ("coordinators", "agents") when `kinds` is set. Not rounded.
export function perUnit(before: Record<string, number>, after: Record<string, number>, units: number, kinds = false): Record<string, number> {
  const per: Record<string, number> = {};
  for (const [name, n] of Object.entries(after)) {
    const used = n - (before[name] ?? 0);
    const kind = /^(coordinator|agent)-\d+$/.exec(name)?.[1];
    if (kinds && kind) per[`${kind}s`] = (per[`${kind}s`] ?? 0) + used / units;
    else per[name] = used / units;
  }
  return per;
}

// CPU ms per unit between two snapshots (perUnit), with what the machine
// did besides this Otto (the kernel's share, other processes on the
// machine) as "other".
export function cpuPer(before: Record<string, number>, after: Record<string, number>, units: number, kinds = false): Record<string, number> {
  const per = perUnit(before, after, units, kinds);
  per.other = per.machine - per.otto;
  for (const name of Object.keys(per)) per[name] = Math.round(per[name] * 100) / 100;
  return per;
}

// How many times each of this Otto's processes (ottoProcesses) has gone to
// sleep waiting for something and been woken up so far, and all of them
// ("otto"): on one host, about one per message between two of them (a call,
// an answer, a Postgres statement, a notification each listener hears).
export async function wakeupsSnapshot(processes: Array<{ name: string; pid: number | undefined }>, postgresPid?: number): Promise<Record<string, number>> {
  const snapshot: Record<string, number> = { postgres: 0, launchers: 0, otto: 0 };
  for (const { pid, name } of await ottoProcesses(processes, postgresPid)) {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    const wakeups = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    snapshot[name] = (snapshot[name] ?? 0) + wakeups;
    snapshot.otto += wakeups;
  }
  return snapshot;
}

// This Otto's processes as the bench counts them, each with its CPU so far:
// each of `processes` under its name; its Postgres, the server
// `postgresPid` and its backends (every postgres on the machine without
// it), as "postgres"; its agents' step launchers as "launchers".
async function ottoProcesses(processes: Array<{ name: string; pid: number | undefined }>, postgresPid: number | undefined) {
  const names = new Map(processes.flatMap((p) => (p.pid ? [[p.pid, p.name] as const] : [])));
  const agents = new Set(processes.flatMap((p) => (p.pid && /^agent-\d+$/.test(p.name) ? [p.pid] : [])));
  const found: Array<{ pid: string; name: string; ms: number; childrenMs: number }> = [];
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
    const { comm, ppid, ms, childrenMs } = await cpuOf(pid);
    const ours = comm === "postgres" && (postgresPid === undefined || Number(pid) === postgresPid || ppid === postgresPid);
    const name =
      names.get(Number(pid)) ??
      (ours ? "postgres" : undefined) ??
      (agents.has(ppid) && /step-launcher(\.mjs)?\0/.test(await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")) ? "launchers" : undefined);
    if (name) found.push({ pid, name, ms, childrenMs });
  }
  return found;
}

async function cpuOf(pid: number | string) {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = (i: number) => (Number(fields[i]) * 1000) / ticksPerSecond;
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  return { comm, ppid: Number(fields[1]), ms: ticks(11) + ticks(12), childrenMs: ticks(13) + ticks(14) };
}
