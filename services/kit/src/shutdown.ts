// Layered graceful shutdown: on the first SIGTERM/SIGINT run the registered
// steps in reverse order of registration; a second signal forces exit.
type Step = { name: string; run: () => Promise<void> | void };

const steps: Step[] = [];
let stopping: Promise<void> | undefined;

export function onShutdown(name: string, run: Step["run"]): void {
  steps.push({ name, run });
}

export function shutdown(reason: string, log: (msg: string, fields: object) => void): Promise<void> {
  if (stopping) return stopping;
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

export function installSignalHandlers(log: (msg: string, fields: object) => void, deadlineMs = 10_000): void {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      if (stopping) {
        log("second signal, exiting now", { signal });
        process.exit(130);
      }
      const timer = setTimeout(() => {
        log("shutdown deadline passed, exiting", { deadlineMs });
        process.exit(1);
      }, deadlineMs);
      timer.unref();
      void shutdown(signal, log).then(() => process.exit(0));
    });
  }
}
