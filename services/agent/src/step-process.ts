import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
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
}

const killGraceMs = 2_000;

interface RunningStep {
  onLine: StepProcessOptions["onLine"];
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void;
  // The step's process group, once the spawner says it started.
  pid?: number;
}

type SpawnerEvent =
  | { ev: "started"; id: number; pid: number }
  | { ev: "line"; id: number; stream: "out" | "err"; text: string }
  | { ev: "exit"; id: number; code: number | null; signal: NodeJS.Signals | null };

// The agent's one step spawner (step-spawner.mjs), started on first use and
// again if it ever dies; the steps it was running then end as killed.
class Spawner {
  #process: ChildProcess | undefined;
  #steps = new Map<number, RunningStep>();
  #nextId = 1;

  start(): void {
    this.#ensure();
  }

  run(script: string, cwd: string, env: Record<string, string>, step: RunningStep): { kill(signal: NodeJS.Signals): void } {
    const spawner = this.#ensure();
    const id = this.#nextId++;
    this.#steps.set(id, step);
    spawner.stdin!.write(JSON.stringify({ op: "spawn", id, script, cwd, env }) + "\n");
    return {
      kill: (signal) => {
        if (this.#steps.has(id)) spawner.stdin!.write(JSON.stringify({ op: "kill", id, signal }) + "\n");
      },
    };
  }

  #ensure(): ChildProcess {
    if (this.#process) return this.#process;
    const entry = fileURLToPath(new URL("./step-spawner.mjs", import.meta.url));
    const spawner = spawn(process.execPath, ["--max-semi-space-size=1", entry], { stdio: ["pipe", "pipe", "inherit"] });
    createInterface({ input: spawner.stdout!, crlfDelay: Infinity }).on("line", (line) => this.#onEvent(JSON.parse(line)));
    spawner.stdin!.on("error", () => {});
    spawner.on("exit", () => {
      if (this.#process === spawner) this.#process = undefined;
      for (const [id, step] of this.#steps) {
        this.#steps.delete(id);
        if (step.pid !== undefined) killGroup(step.pid);
        step.onLine("the agent's step spawner stopped; the step was killed", "err");
        step.onExit(null, "SIGKILL");
      }
    });
    this.#process = spawner;
    return spawner;
  }

  #onEvent(event: SpawnerEvent) {
    const step = this.#steps.get(event.id);
    if (!step) return;
    if (event.ev === "started") step.pid = event.pid;
    else if (event.ev === "line") step.onLine(event.text, event.stream);
    else if (event.ev === "exit") {
      this.#steps.delete(event.id);
      step.onExit(event.code, event.signal);
    }
  }
}

function killGroup(pid: number) {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // gone already
  }
}

const spawner = new Spawner();

// Starts the spawner ahead of the first step, which then need not wait for it.
export function startStepSpawner(): void {
  spawner.start();
}

// Runs one step as `/bin/sh -e -c SCRIPT` in its own process group (started
// by the spawner), so that a timeout or a cancel can kill everything the step
// started, and whatever it leaves behind goes when it ends.
export function runStepProcess(options: StepProcessOptions): Promise<StepOutcome> {
  return new Promise((resolve) => {
    let stoppedBy: "timed-out" | "canceled" | undefined;
    let exited = false;
    const step = spawner.run(options.script, options.cwd, options.env, {
      onLine: options.onLine,
      onExit: (code, signal) => {
        exited = true;
        clearTimeout(timer);
        options.cancel.removeEventListener("abort", onCancel);
        const exitCode = code ?? (signal ? -1 : 0);
        resolve(stoppedBy ? { kind: stoppedBy, exitCode } : { kind: "exited", exitCode });
      },
    });
    const stop = (why: "timed-out" | "canceled") => {
      if (stoppedBy || exited) return;
      stoppedBy = why;
      step.kill("SIGTERM");
      setTimeout(() => step.kill("SIGKILL"), killGraceMs).unref();
    };
    const timer = options.timeoutMs > 0 ? setTimeout(() => stop("timed-out"), options.timeoutMs) : undefined;
    const onCancel = () => stop("canceled");
    options.cancel.addEventListener("abort", onCancel);
    if (options.cancel.aborted) onCancel();
  });
}
