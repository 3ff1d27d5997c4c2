// Ctrl-C, SIGTERM or SIGHUP stop everything the launcher started, at any
// moment: while Otto starts, the start ends after the step under way and
// undoes every step before it (the embedded Postgres included); once Otto is
// up, every process stops in order. A second signal exits at once.
export class StopSignals {
  readonly #controller = new AbortController();
  #system: { stop(): Promise<void> } | undefined;

  constructor(say: (text: string) => void, exitCode = 0) {
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.on(signal, () => {
        if (this.#controller.signal.aborted) process.exit(130);
        this.#controller.abort(new Interrupted(signal));
        say(`${signal}: stopping every process`);
        if (this.#system) void this.#system.stop().then(() => process.exit(exitCode));
      });
    }
  }

  // Aborted by the first signal; a start given it gives up at its next step.
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  // Otto is up: the next signal stops it.
  up(system: { stop(): Promise<void> }): void {
    this.#system = system;
  }
}

export class Interrupted extends Error {
  constructor(signal: string) {
    super(`${signal} during start-up: everything started so far is stopped`);
  }
}
