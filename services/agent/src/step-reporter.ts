import type { StepReport } from "../../../gen/otto/v1/agent_service_pb.ts";

export type StepChange = Pick<StepReport, "stepIndex" | "state" | "exitCode">;

// Sends a task's step changes to the coordinator one call at a time. Changes
// made while a call is in flight go together in the next call, so slow steps
// are reported as they happen and quick ones in batches; what is still
// unsent when the task ends is handed to CompleteTask by `drain`.
export class StepReporter {
  readonly #send: (changes: StepChange[]) => Promise<void>;
  #pending: StepChange[] = [];
  #inFlight: Promise<void> | undefined;
  #error: unknown;

  constructor(send: (changes: StepChange[]) => Promise<void>) {
    this.#send = send;
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
    await this.#inFlight;
    if (this.#error) throw this.#error;
    return this.#pending.splice(0);
  }

  async #pump(): Promise<void> {
    try {
      while (this.#pending.length > 0 && !this.#error) {
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
}
