import { Code, ConnectError } from "@connectrpc/connect";
import type { Caller } from "./caller.ts";
import { Gauge, metrics } from "./metrics.ts";

const waitingBodies = new Gauge({
  name: "otto_rpc_bodies_waiting",
  help: "Requests whose body waits, unread, for one of its caller's places",
  registers: [metrics],
});

interface Places {
  taken: number;
  waiting: Array<() => void>;
}

// How many request bodies one caller may have on their way in at once (being
// received or decoded). A caller's further requests wait, their bodies
// unread, until one of its places is free, so one caller sending many large
// bodies holds at most that many in memory and cannot starve the others,
// while a burst of requests from one tool is only slowed; past `maxWaiting`
// waiting requests the answer is resource_exhausted at once. A caller is a
// token (or a task's attempt); one without a token is its IP address. Otto's
// own processes are not limited.
export class BodiesInFlight {
  readonly #max: number;
  readonly #maxWaiting: number;
  readonly #callers = new Map<string, Places>();

  constructor(maxPerCaller: number, maxWaitingPerCaller: number) {
    this.#max = maxPerCaller;
    this.#maxWaiting = maxWaitingPerCaller;
  }

  // A place for one body of the caller's, once there is one; the function
  // returned gives it back (calling it again does nothing). A request that
  // ends (`signal`) while it waits leaves the queue.
  async take(caller: Caller, remoteAddress: string | undefined, signal: AbortSignal): Promise<() => void> {
    const key = keyOf(caller, remoteAddress);
    if (key === undefined) return () => {};
    let places = this.#callers.get(key);
    if (!places) this.#callers.set(key, (places = { taken: 0, waiting: [] }));
    if (places.taken >= this.#max) await this.#wait(places, signal);
    places.taken++;
    let given = false;
    return () => {
      if (given) return;
      given = true;
      places.taken--;
      const next = places.waiting.shift();
      if (next) next();
      else if (places.taken === 0) this.#callers.delete(key);
    };
  }

  #wait(places: Places, signal: AbortSignal): Promise<void> {
    if (places.waiting.length >= this.#maxWaiting) {
      throw new ConnectError(
        `too many requests from this caller at once (${this.#max} bodies in flight and ${this.#maxWaiting} waiting); try again shortly`,
        Code.ResourceExhausted,
      );
    }
    if (signal.aborted) throw new ConnectError("the request ended while it waited", Code.Canceled);
    return new Promise((resolve, reject) => {
      waitingBodies.inc();
      const admit = () => {
        waitingBodies.dec();
        signal.removeEventListener("abort", leave);
        resolve();
      };
      const leave = () => {
        waitingBodies.dec();
        places.waiting.splice(places.waiting.indexOf(admit), 1);
        reject(new ConnectError("the request ended while it waited", Code.Canceled));
      };
      places.waiting.push(admit);
      signal.addEventListener("abort", leave, { once: true });
    });
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
    case "step":
      return `step ${caller.runId}/${caller.job}/${caller.attempt}`;
    default:
      return `address ${remoteAddress ?? "unknown"}`;
  }
}
