// Runs the functions given for one key one after another, in call order;
// different keys run independently. A caller whose signal aborts while it
// waits leaves the queue without running, and those behind it still wait
// for the ones before it.
export function createPerKeyQueue() {
  const tails = new Map<string, Promise<void>>();

  return async function runExclusive<T>(key: string, signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    const before = tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    const tail = before.then(() => done);
    tails.set(key, tail);
    try {
      await untilAborted(before, signal);
      return await fn();
    } finally {
      release();
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}

function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
