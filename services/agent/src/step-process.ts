import { StepLauncher, chooseLauncher, type LauncherKind } from "./step-launcher.ts";
import type { SandboxSettings } from "./step-sandbox.ts";
import type { OnText } from "./output-text.ts";
import type { OutputPressure } from "./log-sink.ts";

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
  onOutput: OnText;
  // While it is full, the step's output is left unread: the step waits on
  // its pipe as it would on a slow terminal.
  pressure?: OutputPressure;
}

const killGraceMs = 2_000;

let launcher: StepLauncher | undefined;

// Starts the agent's step launcher ahead of the first step, which then need
// not wait for it.
export function startStepLauncher(kind: LauncherKind, sandbox?: SandboxSettings): StepLauncher {
  launcher = new StepLauncher(kind, sandbox);
  launcher.start();
  return launcher;
}

// Runs one step as `/bin/sh -e -c SCRIPT` in its own process group (started
// by the step launcher), so that a timeout or a cancel can kill everything
// the step started, and whatever it leaves behind goes when it ends.
export function runStepProcess(options: StepProcessOptions, through?: StepLauncher): Promise<StepOutcome> {
  const stepLauncher = through ?? (launcher ??= new StepLauncher(chooseLauncher("auto").kind));
  return new Promise((resolve) => {
    let stoppedBy: "timed-out" | "canceled" | undefined;
    let exited = false;
    const step = stepLauncher.run(options.script, options.cwd, options.env, {
      onOutput: options.onOutput,
      onExit: (code, signal) => {
        exited = true;
        unwatch();
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
      setTimeout(() => {
        step.kill("SIGKILL");
        // Killed, the step prints no more: what it left in its pipe is
        // read whatever the pressure, so that its exit is seen.
        unwatch();
        step.resume();
      }, killGraceMs).unref();
    };
    const unwatch = options.pressure?.watch((full) => (full ? step.pause() : step.resume())) ?? (() => {});
    if (options.pressure?.full) step.pause();
    const timer = options.timeoutMs > 0 ? setTimeout(() => stop("timed-out"), options.timeoutMs) : undefined;
    const onCancel = () => stop("canceled");
    options.cancel.addEventListener("abort", onCancel);
    if (options.cancel.aborted) onCancel();
  });
}
