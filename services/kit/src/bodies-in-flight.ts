import { Code, ConnectError } from "@connectrpc/connect";
import type { Caller } from "./caller.ts";

// How many request bodies one caller may have on their way in at once (being
// received or decoded): past that the answer is resource_exhausted at once,
// so one caller sending many large bodies cannot starve the others. A caller
// is a token (or a task's attempt); one without a token is its IP address.
// Otto's own processes are not limited.
export class BodiesInFlight {
  readonly #max: number;
  readonly #counts = new Map<string, number>();

  constructor(maxPerCaller: number) {
    this.#max = maxPerCaller;
  }

  // A place for one body of the caller's; the function returned gives it
  // back (calling it again does nothing).
  take(caller: Caller, remoteAddress: string | undefined): () => void {
    const key = keyOf(caller, remoteAddress);
    if (key === undefined) return () => {};
    const count = this.#counts.get(key) ?? 0;
    if (count >= this.#max) {
      throw new ConnectError(
        `too many requests from this caller at once (at most ${this.#max} bodies in flight per caller); try again shortly`,
        Code.ResourceExhausted,
      );
    }
    this.#counts.set(key, count + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = this.#counts.get(key)! - 1;
      if (left === 0) this.#counts.delete(key);
      else this.#counts.set(key, left);
    };
  }
}

function keyOf(caller: Caller, remoteAddress: string | undefined): string | undefined {
  switch (caller.kind) {
    case "service":
      return undefined;
    case "api":
    case "agent":
      return `token ${caller.tokenId}`;
    case "task":
      return `task ${caller.runId}/${caller.job}/${caller.attempt}`;
    default:
      return `address ${remoteAddress ?? "unknown"}`;
  }
}
