import { isNetworkError } from "@otto/contracts/network-error";

// Errors of work that certainly did not take effect, or that may be done
// again without harm, because something it depends on (Postgres, S3) could
// not be reached. A server answers them `unavailable`, which Otto's clients
// try again (elsewhere, then later), instead of `internal`, which they give
// up on. Marked where that is known, not guessed from the error afterwards.
const marked = new WeakSet<object>();

export function markRetryable<T>(err: T): T {
  if (typeof err === "object" && err !== null) marked.add(err);
  return err;
}

export function isRetryable(err: unknown): boolean {
  return typeof err === "object" && err !== null && (marked.has(err) || refused(err));
}

// A connection that was refused never carried a request.
function refused(err: object): boolean {
  return (err as { code?: unknown }).code === "ECONNREFUSED";
}

export { isNetworkError } from "@otto/contracts/network-error";

// The database connection was lost or could not be had: Postgres ended the
// session (shutting down, restarting) or cannot take one now, or the
// connection itself failed. Whether a write sent just before took effect
// is then unknown; a read or a write that may be done twice can be retried.
export function isConnectionLoss(err: unknown): boolean {
  if (isNetworkError(err)) return true;
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  if (typeof code === "string" && (/^57P0[123]$/.test(code) || /^08...$/.test(code))) return true;
  return typeof message === "string" && /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/.test(message);
}

// Runs work that may be done again without harm (a read, or a write that
// is idempotent): a lost connection (by `lost`, the database's by default)
// makes its error retryable.
export async function repeatable<T>(work: () => Promise<T>, lost: (err: unknown) => boolean = isConnectionLoss): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw lost(err) ? markRetryable(err) : err;
  }
}
