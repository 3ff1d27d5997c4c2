import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { constants } from "node:os";
import { fileURLToPath } from "node:url";
import { OutputText, type OnText } from "./output-text.ts";
import { launcherArguments, type SandboxSettings } from "./step-sandbox.ts";

export type LauncherKind = "native" | "javascript";
export type LauncherChoice = LauncherKind | "auto";

export interface LaunchedStep {
  // Whole lines of output; `continues`: the last goes on in the next call (a line cut at 4 MiB).
  onOutput: OnText;
  onExit: (code: number | null, signal: NodeJS.Signals | null) => void;
}

export interface StepHandle {
  kill(signal: NodeJS.Signals): void;
  // Stops and restarts reading the step's output (a step that fills its
  // pipe meanwhile waits).
  pause(): void;
  resume(): void;
}

const protocol = "3";
const nativeSources = ["step-launcher.c", "sandbox.c", "sandbox.h"].map((name) => fileURLToPath(new URL(`../native/${name}`, import.meta.url)));
const nativeBinary = fileURLToPath(new URL("../native/build/step-launcher", import.meta.url));
const javascriptEntry = fileURLToPath(new URL("./step-launcher.mjs", import.meta.url));
const signalNames = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]));

// The launcher the agent uses: the native one if it was built (`npm ci` builds
// it where there is a C compiler) from the source as it is now, else the
// JavaScript one, saying why; `native` or `javascript` insists on one.
export function chooseLauncher(
  choice: LauncherChoice,
  native = { binary: nativeBinary, sources: nativeSources },
): { kind: LauncherKind; why?: string } {
  if (choice === "javascript") return { kind: "javascript" };
  const problem = nativeProblem(native.binary, native.sources);
  if (!problem) return { kind: "native" };
  const why = `the native step launcher ${problem}; \`npm run build:launcher\` builds it (it needs a C compiler)`;
  if (choice === "native") throw new Error(why);
  return { kind: "javascript", why };
}

function nativeProblem(binary: string, sources: string[]): string | undefined {
  if (!existsSync(binary)) return "is not built";
  const built = statSync(binary).mtimeMs;
  if (sources.some((source) => built < statSync(source).mtimeMs)) return "is older than its source";
  const answer = spawnSync(binary, ["--protocol"], { encoding: "utf8" });
  if (answer.stdout?.trim() !== protocol) return `does not speak protocol ${protocol}`;
  return undefined;
}

interface RunningStep extends LaunchedStep {
  text: OutputText;
  // The step's process group, once the launcher says it started.
  pid?: number;
}

// A step launcher process (native/step-launcher.c or step-launcher.mjs, one
// protocol), started on first use and again if it ever dies; the steps it was
// running then end as killed. Only the native one sandboxes steps; sandboxed,
// a step's `cwd` is its job directory (see step-sandbox.ts).
export class StepLauncher {
  readonly kind: LauncherKind;
  readonly sandbox: SandboxSettings | undefined;
  #process: ChildProcess | undefined;
  #steps = new Map<string, RunningStep>();
  #nextId = 1;
  // The start of an event line, and the output bytes still to come of the last `output` event.
  #pending = Buffer.alloc(0);
  #body: { step: RunningStep | undefined; left: number } | undefined;

  constructor(kind: LauncherKind, sandbox?: SandboxSettings) {
    if (sandbox && kind !== "native") throw new Error("the JavaScript step launcher cannot sandbox steps");
    this.kind = kind;
    this.sandbox = sandbox;
  }

  start(): void {
    this.#ensure();
  }

  // The launcher process's pid, while one runs.
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  // Ends the launcher, and with it every step it runs.
  stop(): void {
    this.#process?.stdin?.end();
  }

  run(script: string, cwd: string, env: Record<string, string>, step: LaunchedStep): StepHandle {
    const environment = Object.entries(env).map(([name, value]) => `${name}=${value}`);
    const fields = [cwd, script, ...environment];
    // No process can take a NUL in its arguments or environment (and the
    // protocol ends fields with it).
    const withNul = fields.find((field) => field.includes("\0"));
    if (withNul !== undefined) {
      const what = withNul === script ? "its script" : withNul === cwd ? "its directory" : `variable ${withNul.slice(0, withNul.indexOf("="))}`;
      queueMicrotask(() => {
        step.onOutput(Buffer.from(`cannot start /bin/sh: ${what} contains a NUL character\n`), false);
        step.onExit(127, null);
      });
      return { kill: () => {}, pause: () => {}, resume: () => {} };
    }
    const launcher = this.#ensure();
    const id = String(this.#nextId++);
    this.#steps.set(id, { ...step, text: new OutputText() });
    launcher.stdin!.write(request("spawn", id, fields));
    let paused = false;
    const flow = (pause: boolean) => {
      if (paused === pause || !this.#steps.has(id)) return;
      paused = pause;
      launcher.stdin!.write(request(pause ? "pause" : "resume", id, []));
    };
    return {
      kill: (signal) => {
        if (this.#steps.has(id)) launcher.stdin!.write(request("kill", id, [String(constants.signals[signal])]));
      },
      pause: () => flow(true),
      resume: () => flow(false),
    };
  }

  #ensure(): ChildProcess {
    if (this.#process) return this.#process;
    const [command, args] =
      this.kind === "native" ? [nativeBinary, launcherArguments(this.sandbox)] : [process.execPath, ["--max-semi-space-size=1", javascriptEntry]];
    const launcher = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
    this.#pending = Buffer.alloc(0);
    this.#body = undefined;
    launcher.stdout!.on("data", (chunk: Buffer) => this.#onData(chunk));
    launcher.stdin!.on("error", () => {});
    launcher.on("exit", () => {
      if (this.#process === launcher) this.#process = undefined;
      for (const [id, step] of this.#steps) {
        this.#steps.delete(id);
        if (step.pid !== undefined) killGroup(step.pid);
        step.onOutput(Buffer.from("the agent's step launcher stopped; the step was killed\n"), false);
        step.onExit(null, "SIGKILL");
      }
    });
    this.#process = launcher;
    return launcher;
  }

  // Events: `started <id> <pid>`, `output <id> <n>` and n bytes, `exit <id> <code> <signal>`.
  // An output's bytes are passed on as they arrive, without being copied.
  #onData(chunk: Buffer) {
    let data = chunk;
    while (data.length > 0) {
      if (this.#body) {
        const take = Math.min(this.#body.left, data.length);
        const { step } = this.#body;
        if (step) step.text.push(data.subarray(0, take), step.onOutput);
        this.#body.left -= take;
        if (this.#body.left === 0) this.#body = undefined;
        data = data.subarray(take);
        continue;
      }
      const newline = data.indexOf(10);
      if (newline < 0) {
        this.#pending = Buffer.concat([this.#pending, data]);
        return;
      }
      const header = this.#pending.toString("latin1") + data.toString("latin1", 0, newline);
      this.#pending = Buffer.alloc(0);
      data = data.subarray(newline + 1);
      const [event, id, first, second] = header.split(" ");
      const step = this.#steps.get(id!);
      if (event === "output") {
        const left = Number(first);
        if (left > 0) this.#body = { step, left };
        continue;
      }
      if (!step) continue;
      if (event === "started") step.pid = Number(first);
      else if (event === "exit") {
        this.#steps.delete(id!);
        step.text.end(step.onOutput);
        const code = Number(first);
        step.onExit(code < 0 ? null : code, signalNames.get(Number(second)) ?? null);
      }
    }
  }
}

// `<op>\0<id>\0<n>\0` and then n fields, each ended by a NUL.
function request(op: string, id: string, fields: string[]): string {
  return [op, id, String(fields.length), ...fields].join("\0") + "\0";
}

// The step's group, and its first process itself (a sandbox's init, which
// takes its whole sandbox down, may not have made its group yet).
function killGroup(pid: number) {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // gone already
    }
  }
}
