import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { callerKey } from "./caller.ts";

export interface LiveTokenIds {
  isLiveId(id: string): Promise<boolean>;
}

// A stream served to the holder of a token (a WatchRun, a followed ReadLog)
// ends with unauthenticated once that token is revoked or expires. The
// tokens of open streams are checked every `everyMs`; the token store
// answers from its cache, which a revocation clears at once in every process
// (NOTIFY otto_auth) and which lasts no longer than the token, so this costs
// a query only after a revocation, at an expiry, or once a minute.
export function endStreamsOnRevocation(tokens: LiveTokenIds, everyMs = 250): Interceptor {
  const open = new Map<string, Set<AbortController>>();
  let timer: NodeJS.Timeout | undefined;
  let checking = false;
  const check = async () => {
    if (checking) return;
    checking = true;
    try {
      for (const [id, streams] of open) {
        const live = await tokens.isLiveId(id).catch(() => true);
        if (!live) for (const stream of streams) stream.abort();
      }
    } finally {
      checking = false;
    }
  };
  const watch = (id: string, stream: AbortController) => {
    let streams = open.get(id);
    if (!streams) open.set(id, (streams = new Set()));
    streams.add(stream);
    timer ??= setInterval(() => void check(), everyMs).unref();
    return () => {
      streams.delete(stream);
      if (streams.size === 0 && open.get(id) === streams) open.delete(id);
      if (open.size === 0) {
        clearInterval(timer);
        timer = undefined;
      }
    };
  };
  return (next) => async (req) => {
    const response = await next(req);
    const caller = req.contextValues.get(callerKey);
    if (!response.stream || (caller.kind !== "api" && caller.kind !== "agent")) return response;
    const revoked = new AbortController();
    const unwatch = watch(caller.tokenId, revoked);
    return { ...response, message: untilAborted(response.message, revoked.signal, unwatch) };
  };
}

async function* untilAborted<T>(messages: AsyncIterable<T>, signal: AbortSignal, done: () => void): AsyncGenerator<T> {
  const iterator = messages[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await nextUnlessAborted(iterator, signal);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    done();
    // A read still waiting ends when Connect aborts the call's signal, which
    // it does as this stream fails; the inner stream closes after it.
    void iterator.return?.()?.catch(() => {});
  }
}

// The iterator's next message, or the revocation's error if `signal` aborts
// first. Not a race with one promise that stays pending for the whole
// stream: each race would leave a reaction on it, holding that message,
// until the stream ends.
function nextUnlessAborted<T>(iterator: AsyncIterator<T>, signal: AbortSignal): Promise<IteratorResult<T>> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new ConnectError("the token was revoked or has expired", Code.Unauthenticated));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    iterator.next().then(
      (next) => {
        signal.removeEventListener("abort", onAbort);
        resolve(next);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}
