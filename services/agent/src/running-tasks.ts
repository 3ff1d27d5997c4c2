// The attempts this agent process runs, across its slots. A task's next
// attempt may be handed to one slot while another slot still winds its
// earlier attempt down (the coordinator retries a failed attempt as soon as
// it hears of the failure, before that slot has cleaned up), so an attempt,
// not a task, is what runs once here.
export interface AttemptRef {
  taskId: string;
  attempt: number;
}

const key = (ref: AttemptRef) => `${ref.taskId}#${ref.attempt}`;

export class RunningTasks {
  readonly #running = new Map<string, AttemptRef>();
  // Tasks whose completion the coordinator never confirmed: still named as
  // running, so that a lost answer about them is never handed out again.
  readonly #unconfirmed = new Set<string>();

  readonly #unconfirmedKept: number;

  constructor(unconfirmedKept = 1_000) {
    this.#unconfirmedKept = unconfirmedKept;
  }

  get size(): number {
    return this.#running.size;
  }

  has(ref: AttemptRef): boolean {
    return this.#running.has(key(ref));
  }

  start(ref: AttemptRef): void {
    this.#running.set(key(ref), { taskId: ref.taskId, attempt: ref.attempt });
  }

  finish(ref: AttemptRef, confirmed: boolean): void {
    this.#running.delete(key(ref));
    if (confirmed) return;
    this.#unconfirmed.add(ref.taskId);
    if (this.#unconfirmed.size > this.#unconfirmedKept) this.#unconfirmed.delete(this.#unconfirmed.values().next().value!);
  }

  // What an acquire call says this process runs: each task once.
  taskIds(): string[] {
    return [...new Set([...[...this.#running.values()].map((r) => r.taskId), ...this.#unconfirmed])];
  }
}
