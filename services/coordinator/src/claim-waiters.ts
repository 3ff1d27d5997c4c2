import type { Notifier } from "../../kit/src/notifier.ts";
import { tasksChannel } from "./advance-run.ts";

// The agents' long polls waiting in this coordinator for a task. A
// notification that tasks became claimable wakes one waiter, not all of
// them: a waiter that claims a task passes the wake-up on (there may be
// more), one that finds nothing goes back to waiting. So N new tasks cost
// about N claims per coordinator instead of N times the number of waiters.
// A wake-up that finds nobody waiting is remembered for the next waiter, so
// one that arrives while every waiter is busy claiming is not lost.
export class ClaimWaiters {
  readonly #queue: Array<() => void> = [];
  #missedWakeUp = false;

  constructor(notifier: Notifier) {
    notifier.on(tasksChannel, (payload) => (payload === "*" ? this.wakeAll() : this.wakeOne()));
  }

  get waiting(): number {
    return this.#queue.length;
  }

  // Resolves when woken, after `timeoutMs`, or when `signal` aborts.
  wait(timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.#missedWakeUp || signal.aborted) {
      this.#missedWakeUp = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener("abort", done);
        const index = this.#queue.indexOf(done);
        if (index >= 0) this.#queue.splice(index, 1);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal.addEventListener("abort", done);
      this.#queue.push(done);
    });
  }

  wakeOne(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#missedWakeUp = true;
  }

  wakeAll(): void {
    for (const waiter of this.#queue.splice(0)) waiter();
  }
}
