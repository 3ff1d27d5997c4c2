import { readdirSync, readFileSync } from "node:fs";

// Host pids of the processes whose command line is exactly `argv`: a step in
// its own PID namespace cannot say its host pid, so a test finds it by a
// command line of its own making.
export function hostPidsRunning(argv: string[]): number[] {
  const wanted = argv.join("\0") + "\0";
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "latin1") === wanted) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

// The host pid of the shell running a step's script, once it runs.
export function hostPidOfStep(script: string): number | undefined {
  return hostPidsRunning(["/bin/sh", "-e", "-c", script])[0];
}

// A `sleep` no other process runs (its seconds carry a random fraction), so
// that a test can find its host pid with hostPidsRunning(argv).
export function uniqueSleep(seconds: number): { command: string; argv: string[] } {
  const length = `${seconds}.${Math.floor(Math.random() * 1e6)}`;
  return { command: `sleep ${length}`, argv: ["sleep", length] };
}
