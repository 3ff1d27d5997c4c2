import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

export type StepOutcome =
  | { kind: "exited"; exitCode: number }
  | { kind: "timed-out"; exitCode: number }
  | { kind: "canceled"; exitCode: number };

export interface StepProcessOptions {
  script: string;
  cwd: string;
  env: Record<string, string>;
  timeoutMs: number;
  cancel: AbortSignal;
  onLine: (line: string, stream: "out" | "err") => void;
  onStart?: (pid: number) => void;
}

const killGraceMs = 2_000;

// Process groups of steps running now. However the agent exits (a forced
// stop, a crash), it takes them along rather than leave them running
// unowned; only a SIGKILL of the agent itself cannot.
const liveGroups = new Set<number>();
process.on("exit", () => {
  for (const pid of liveGroups) killGroup(pid, "SIGKILL");
});

// Runs one step as `/bin/sh -e -c SCRIPT` in its own process group, so that a
// timeout or a cancel can kill everything the step started.
export function runStepProcess(options: StepProcessOptions): Promise<StepOutcome> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-e", "-c", options.script], {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stoppedBy: "timed-out" | "canceled" | undefined;
    const stop = (why: "timed-out" | "canceled") => {
      if (stoppedBy || child.exitCode !== null) return;
      stoppedBy = why;
      killGroup(child.pid, "SIGTERM");
      setTimeout(() => killGroup(child.pid, "SIGKILL"), killGraceMs).unref();
    };
    const timer = options.timeoutMs > 0 ? setTimeout(() => stop("timed-out"), options.timeoutMs) : undefined;
    const onCancel = () => stop("canceled");
    options.cancel.addEventListener("abort", onCancel);
    if (options.cancel.aborted) onCancel();
    if (child.pid !== undefined) {
      liveGroups.add(child.pid);
      options.onStart?.(child.pid);
    }

    const streams = [
      readLines(child.stdout!, (line) => options.onLine(line, "out")),
      readLines(child.stderr!, (line) => options.onLine(line, "err")),
    ];
    child.on("error", (err) => {
      options.onLine(`cannot start /bin/sh: ${err.message}`, "err");
    });
    child.on("close", (code, signal) => finish(code, signal));
    let finished = false;
    const finish = async (code: number | null, signal: NodeJS.Signals | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      options.cancel.removeEventListener("abort", onCancel);
      // Whatever the step left behind in its group goes with it.
      killGroup(child.pid, "SIGKILL");
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      await Promise.all(streams);
      const exitCode = code ?? (signal ? -1 : 0);
      resolve(stoppedBy ? { kind: stoppedBy, exitCode } : { kind: "exited", exitCode });
    };
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals) {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is already gone.
  }
}

function readLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve) => {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on("line", onLine);
    lines.on("close", () => resolve());
  });
}
