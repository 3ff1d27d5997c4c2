import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { isNetworkError } from "@otto/contracts/network-error";
import { mayRepeat } from "@otto/contracts/repeatable-methods";

// A unary call that may be made again (a read, or a SubmitRun with its
// request id) and was answered unavailable (the gateway restarting, or
// something behind it out of reach), or whose connection broke (which
// connect-node may call internal), is made again after a pause that grows
// from 100 ms to 2 s, for up to `retryForMs` and within its deadline.
// Anything else, and every stream, is the caller's to handle.
export function retryUnavailable(retryForMs: number): Interceptor {
  return (next) => async (req) => {
    if (req.stream || retryForMs <= 0 || !mayRepeat(req.method, req.message)) return next(req);
    const giveUpAt = Date.now() + retryForMs;
    for (let pause = 100; ; pause = Math.min(pause * 2, 2_000)) {
      try {
        return await next(req);
      } catch (err) {
        if (!unreachable(err) || req.signal.aborted || Date.now() + pause > giveUpAt) throw err;
        await pauseFor(pause, req.signal);
      }
    }
  };
}

function unreachable(err: unknown): boolean {
  const error = ConnectError.from(err);
  if (error.code === Code.Unavailable) return true;
  return isNetworkError(error.cause);
}

function pauseFor(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
