import { Code, ConnectError } from "@connectrpc/connect";

// A bound on how many of something run at once; past it, callers are told
// `resource_exhausted` at once instead of piling up.
export class ConcurrencyLimit {
  readonly #name: string;
  readonly #max: number;
  #active = 0;

  constructor(name: string, max: number) {
    this.#name = name;
    this.#max = max;
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    this.enter();
    try {
      return await work();
    } finally {
      this.#active--;
    }
  }

  async *stream<T>(work: () => AsyncIterable<T>): AsyncGenerator<T> {
    this.enter();
    try {
      yield* work();
    } finally {
      this.#active--;
    }
  }

  enter(): void {
    if (this.#active >= this.#max) {
      throw new ConnectError(`too many ${this.#name} at once (limit ${this.#max}); try again shortly`, Code.ResourceExhausted);
    }
    this.#active++;
  }
}
