// Layered graceful shutdown: on the first SIGTERM/SIGINT run the registered
// steps in reverse order of registration; a second signal forces exit.
type Step = { name: string; run: () => Promise<void> | void };

const steps: Step[] = [];
let stopping: Promise<void> | undefined;

export function onShutdown(name: string, run: Step["run"]): void {
  steps.push({ name, run });
}

const drainingController = new AbortController();
// Aborted when shutdown begins: long polls and streams end early on it, so
// their callers go to a peer instead of holding this process open.
export const draining: AbortSignal = drainingController.signal;

export function shutdown(reason: string, log: (msg: string, fields: object) => void): Promise<void> {
  if (stopping) return stopping;
  drainingController.abort();
  stopping = (async () => {
    log("shutting down", { reason });
    for (const step of [...steps].reverse()) {
      try {
        await step.run();
      } catch (err) {
        log("shutdown step failed", { step: step.name, err });
      }
    }
  })();
  return stopping;
}

// How long a stopping process may take before it exits anyway:
// OTTO_SHUTDOWN_TIMEOUT_MS (default 10 s), plus what the process adds.
export function shutdownDeadlineMs(extraMs = 0): number {
  const configured = Number(process.env.OTTO_SHUTDOWN_TIMEOUT_MS);
  return (Number.isFinite(configured) && configured > 0 ? configured : 10_000) + extraMs;
}

export function installSignalHandlers(log: (msg: string, fields: object) => void, deadlineMs = shutdownDeadlineMs()): void {
  const stop = (reason: string) => {
    if (stopping) {
      log("second signal, exiting now", { reason });
      process.exit(130);
    }
    const timer = setTimeout(() => {
      log("shutdown deadline passed, exiting", { deadlineMs });
      process.exit(1);
    }, deadlineMs);
    timer.unref();
    void shutdown(reason, log).then(() => process.exit(0));
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => stop(signal));
  // Started by the launcher: go when it goes, even if it was killed with -9.
  const parent = Number(process.env.OTTO_PARENT_PID);
  if (parent > 0) {
    const timer = setInterval(() => {
      if (!isAlive(parent) && !stopping) stop("launcher gone");
    }, 1_000);
    timer.unref();
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
