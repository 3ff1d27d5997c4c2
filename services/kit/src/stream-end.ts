// A streaming response whose `ended` runs once the stream is over: finished,
// failed (with the error), or left early by its reader (the inner stream is
// closed then too). `each` wraps the production of every message, e.g. to
// run it in a trace context.
export function whenStreamEnds<R extends { message: unknown }>(
  response: R,
  ended: (err?: unknown) => void,
  each: <T>(produce: () => Promise<T>) => Promise<T> = (produce) => produce(),
): R {
  const inner = (response.message as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  // for-await below passes an early return (or a reader's throw) on to here.
  const wrapped: AsyncIterable<unknown> = {
    [Symbol.asyncIterator]: () => ({
      next: () => each(() => inner.next()),
      return: (value?: unknown) => inner.return?.(value) ?? Promise.resolve({ done: true as const, value }),
    }),
  };
  return {
    ...response,
    message: (async function* () {
      let failure: unknown;
      try {
        for await (const message of wrapped) yield message;
      } catch (err) {
        failure = err;
        throw err;
      } finally {
        ended(failure);
      }
    })(),
  };
}
