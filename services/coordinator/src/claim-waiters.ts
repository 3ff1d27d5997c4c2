import type { Notifier } from "../../kit/src/notifier.ts";
import { tasksChannel } from "./engine/apply-changes.ts";

interface Waiter {
  agentId: string;
  wake: (tried: Set<string> | undefined) => void;
}

// The agents' long polls waiting in this coordinator for a task. A
// notification that tasks became claimable wakes one waiter, not all of
// them. A waiter that claims a task wakes the next one (there may be more);
// one that finds nothing passes the wake-up on to a waiter of an agent that
// has not looked yet (another agent may have the labels or room it lacked).
// So N new tasks cost about N claims, plus one per agent that does not fit.
// A wake-up that finds nobody waiting is remembered for the next waiter, so
// one that arrives while every waiter is busy claiming is not lost.
export class ClaimWaiters {
  readonly #queue: Waiter[] = [];
  #missedWakeUp = false;

  constructor(notifier: Notifier) {
    notifier.on(tasksChannel, (payload) => (payload === "*" ? this.wakeAll() : this.wakeOne()));
  }

  get waiting(): number {
    return this.#queue.length;
  }

  // Resolves when woken (with the agents that already looked, if this
  // wake-up was passed on), or with undefined after `timeoutMs` or on abort.
  wait(agentId: string, timeoutMs: number, signal: AbortSignal): Promise<Set<string> | undefined> {
    if (this.#missedWakeUp || signal.aborted) {
      this.#missedWakeUp = false;
      return Promise.resolve(new Set());
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        agentId,
        wake: (tried) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          const index = this.#queue.indexOf(waiter);
          if (index >= 0) this.#queue.splice(index, 1);
          resolve(tried);
        },
      };
      const onAbort = () => waiter.wake(undefined);
      const timer = setTimeout(onAbort, timeoutMs);
      signal.addEventListener("abort", onAbort);
      this.#queue.push(waiter);
    });
  }

  wakeOne(): void {
    const next = this.#queue[0];
    if (next) next.wake(new Set());
    else this.#missedWakeUp = true;
  }

  // Hands a fruitless wake-up to the first waiter of an agent not in `tried`.
  passOn(tried: Set<string>): void {
    this.#queue.find((waiter) => !tried.has(waiter.agentId))?.wake(tried);
  }

  wakeAll(): void {
    for (const waiter of [...this.#queue]) waiter.wake(new Set());
  }
}
