import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { StepReport } from "@otto/gen/v1/agent_service_pb";

// `at`: when the step reached the state, by the agent's clock.
export type StepChange = Pick<StepReport, "stepIndex" | "state" | "exitCode"> & { at: Timestamp };

// Sends a task's step changes to the coordinator one call at a time, each
// call after gathering changes for `gatherMs`. Changes made meanwhile, or
// while a call is in flight, go together in the next call, so slow steps are
// reported as they happen and quick ones in batches; what is still unsent
// when the task ends is handed to CompleteTask by `drain` (which cuts a
// gathering short).
export class StepReporter {
  readonly #send: (changes: StepChange[]) => Promise<void>;
  readonly #gatherMs: number;
  #pending: StepChange[] = [];
  #inFlight: Promise<void> | undefined;
  #error: unknown;
  #draining = false;
  #stopGathering: (() => void) | undefined;

  constructor(send: (changes: StepChange[]) => Promise<void>, gatherMs = 0) {
    this.#send = send;
    this.#gatherMs = gatherMs;
  }

  // The error of a call that failed for good, if any; later changes are kept.
  get error(): unknown {
    return this.#error;
  }

  report(change: StepChange): void {
    this.#pending.push(change);
    this.#inFlight ??= this.#pump();
  }

  // Waits for the call in flight and returns the changes not sent yet.
  async drain(): Promise<StepChange[]> {
    this.#draining = true;
    this.#stopGathering?.();
    await this.#inFlight;
    if (this.#error) throw this.#error;
    return this.#pending.splice(0);
  }

  async #pump(): Promise<void> {
    try {
      while (this.#pending.length > 0 && !this.#error) {
        if (this.#gatherMs > 0 && !this.#draining) await this.#gather();
        if (this.#draining) break;
        const batch = this.#pending.splice(0);
        try {
          await this.#send(batch);
        } catch (err) {
          this.#error = err;
          this.#pending.unshift(...batch);
        }
      }
    } finally {
      this.#inFlight = undefined;
    }
  }

  #gather(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.#gatherMs);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.#stopGathering = undefined;
        resolve();
      }
      this.#stopGathering = done;
    });
  }
}
