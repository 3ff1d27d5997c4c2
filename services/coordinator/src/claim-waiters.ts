import type { Notifier } from "@otto/kit/notifier";
import { tasksChannel } from "./engine/apply-changes.ts";

// What a wake-up is about: the labels of the task that became claimable
// (undefined when unknown: room was freed for any waiting task), and the
// agents that already looked for it and found nothing.
export interface WakeUp {
  labels: string[] | undefined;
  tried: Set<string>;
}

interface Waiter {
  agentId: string;
  labels: Set<string>;
  wake: (news: WakeUp | undefined) => void;
}

const maxMissed = 64;

// The agents' long polls waiting in this coordinator for a task. A
// notification that a task became claimable (its payload: the task's labels
// as JSON, or "" for any) wakes one waiter whose agent has those labels, not
// all of them, and none that could not take it. A waiter that claims a task
// wakes the next one (there may be more); one that finds nothing passes the
// wake-up on to a fitting waiter of an agent that has not looked yet
// (another agent may have the room it lacked). So N new tasks cost about N
// claims, plus one per fitting agent that has no room. A wake-up that finds
// no fitting waiter is remembered for the next one that fits, so one that
// arrives while every such waiter is busy claiming is not lost.
export class ClaimWaiters {
  readonly #queue: Waiter[] = [];
  #missed: (string[] | undefined)[] = [];

  constructor(notifier: Notifier) {
    notifier.on(tasksChannel, (payload) => (payload === "*" ? this.wakeAll() : this.wakeOne(labelsOf(payload))));
  }

  get waiting(): number {
    return this.#queue.length;
  }

  // Resolves when woken (with what the wake-up is about), or with undefined
  // after `timeoutMs` or on abort.
  wait(agentId: string, labels: string[], timeoutMs: number, signal: AbortSignal): Promise<WakeUp | undefined> {
    const have = new Set(labels);
    const missed = this.#missed.findIndex((wanted) => fits(have, wanted));
    if (missed >= 0 || signal.aborted) {
      const [news] = missed >= 0 ? this.#missed.splice(missed, 1) : [undefined];
      return Promise.resolve({ labels: news, tried: new Set() });
    }
    return new Promise((resolve) => {
      const waiter: Waiter = {
        agentId,
        labels: have,
        wake: (news) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          const index = this.#queue.indexOf(waiter);
          if (index >= 0) this.#queue.splice(index, 1);
          resolve(news);
        },
      };
      const onAbort = () => waiter.wake(undefined);
      const timer = setTimeout(onAbort, timeoutMs);
      signal.addEventListener("abort", onAbort);
      this.#queue.push(waiter);
    });
  }

  wakeOne(labels?: string[]): void {
    const next = this.#queue.find((waiter) => fits(waiter.labels, labels));
    if (next) next.wake({ labels, tried: new Set() });
    else if (this.#missed.length < maxMissed) this.#missed.push(labels);
    else this.#missed = [undefined];
  }

  // Hands a fruitless wake-up to the first fitting waiter of an agent that
  // has not looked yet.
  passOn(news: WakeUp): void {
    this.#queue.find((waiter) => !news.tried.has(waiter.agentId) && fits(waiter.labels, news.labels))?.wake(news);
  }

  wakeAll(): void {
    for (const waiter of [...this.#queue]) waiter.wake({ labels: undefined, tried: new Set() });
  }
}

function fits(have: Set<string>, wanted: string[] | undefined): boolean {
  return wanted === undefined || wanted.every((label) => have.has(label));
}

function labelsOf(payload: string): string[] | undefined {
  if (payload === "") return undefined;
  try {
    const labels = JSON.parse(payload);
    return Array.isArray(labels) && labels.every((label) => typeof label === "string") ? labels : undefined;
  } catch {
    return undefined;
  }
}
