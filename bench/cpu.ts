import { readdir, readFile } from "node:fs/promises";

const ticksPerSecond = 100;

// CPU milliseconds used so far by each named process, by this Otto's
// Postgres (the server `postgresPid` and its backends; every postgres on the
// machine without it), its agents' step launchers and (as the CPU of their
// ended children) the steps' shells, in all ("otto"), and by the whole
// machine ("machine", all cores: other people's processes and the kernel's
// work for everyone included).
export async function cpuSnapshot(processes: Array<{ name: string; pid: number | undefined }>, postgresPid?: number): Promise<Record<string, number>> {
  const snapshot: Record<string, number> = {};
  const agents = new Set<number>();
  for (const p of processes) {
    if (!p.pid) continue;
    snapshot[p.name] = (await cpuOf(p.pid)).ms;
    if (/^agent-\d+$/.test(p.name)) agents.add(p.pid);
  }
  snapshot.bench = (await cpuOf(process.pid)).ms;
  snapshot.postgres = 0;
  snapshot.launchers = 0;
  snapshot.steps = 0;
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
    const { comm, ppid, ms, childrenMs } = await cpuOf(pid);
    if (comm === "postgres") {
      if (postgresPid === undefined || Number(pid) === postgresPid || ppid === postgresPid) snapshot.postgres += ms;
      continue;
    }
    if (!agents.has(ppid)) continue;
    const command = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (/step-launcher(\.mjs)?\0/.test(command)) {
      snapshot.launchers += ms;
      snapshot.steps += childrenMs;
    }
  }
  snapshot.otto = Object.values(snapshot).reduce((sum, ms) => sum + ms, 0);
  const cpu = (await readFile("/proc/stat", "utf8")).split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu;
  snapshot.machine = ((user + nice + system + irq + softirq + steal) * 1000) / ticksPerSecond;
  return snapshot;
}

// CPU ms per unit between two snapshots, by process; processes of one kind
// (coordinator-1, coordinator-2, ...) are also summed under the kind's name
// ("coordinators", "agents"), and what the machine did besides this Otto
// (the kernel's share, other processes on the machine) is "other".
export function cpuPer(before: Record<string, number>, after: Record<string, number>, units: number, kinds = false): Record<string, number> {
  const per: Record<string, number> = {};
  for (const [name, ms] of Object.entries(after)) {
    const used = ms - (before[name] ?? 0);
    const kind = /^(coordinator|agent)-\d+$/.exec(name)?.[1];
    if (kinds && kind) per[`${kind}s`] = (per[`${kind}s`] ?? 0) + used / units;
    else per[name] = used / units;
  }
  per.other = per.machine - per.otto;
  for (const name of Object.keys(per)) per[name] = Math.round(per[name] * 100) / 100;
  return per;
}

// How many times each of this Otto's processes (those cpuSnapshot counts,
// its steps' shells aside) has gone to sleep waiting for something and been
// woken up so far, and all of them ("otto"): on one host, about one per
// message between two of them (a call, an answer, a Postgres statement, a
// notification each listener hears).
export async function wakeupsSnapshot(processes: Array<{ name: string; pid: number | undefined }>, postgresPid?: number): Promise<Record<string, number>> {
  const names = new Map(processes.flatMap((p) => (p.pid ? [[p.pid, p.name] as const] : [])));
  const agents = new Set(processes.flatMap((p) => (p.pid && /^agent-\d+$/.test(p.name) ? [p.pid] : [])));
  const snapshot: Record<string, number> = { postgres: 0, launchers: 0, otto: 0 };
  for (const pid of (await readdir("/proc")).filter((name) => /^\d+$/.test(name))) {
    const { comm, ppid } = await cpuOf(pid);
    const name =
      names.get(Number(pid)) ??
      (comm === "postgres" && (postgresPid === undefined || Number(pid) === postgresPid || ppid === postgresPid) ? "postgres" : undefined) ??
      (agents.has(ppid) && /step-launcher/.test(await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")) ? "launchers" : undefined);
    if (!name) continue;
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    const wakeups = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    snapshot[name] = (snapshot[name] ?? 0) + wakeups;
    snapshot.otto += wakeups;
  }
  return snapshot;
}

async function cpuOf(pid: number | string) {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = (i: number) => (Number(fields[i]) * 1000) / ticksPerSecond;
  const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
  return { comm, ppid: Number(fields[1]), ms: ticks(11) + ticks(12), childrenMs: ticks(13) + ticks(14) };
}
