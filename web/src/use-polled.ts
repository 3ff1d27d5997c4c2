import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "./session.ts";
import { useInterval } from "./use-interval.ts";

export interface Polled<T> {
  // The latest answer; undefined until the first.
  value: T | undefined;
  // Why the latest read failed; the answer before it stays shown.
  error: string;
}

// For what has no stream to follow: `read` now and every `ms` while
// mounted, one read at a time (a tick while one goes on is skipped); the
// read under way is aborted on unmount.
export function usePolled<T>(read: (signal: AbortSignal) => Promise<T>, ms: number, fail: (err: unknown) => string): Polled<T> {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState("");
  const latest = useRef({ read, fail });
  latest.current = { read, fail };
  const signal = useRef<AbortSignal | undefined>(undefined);
  const reading = useRef(false);
  const tick = async () => {
    const current = signal.current;
    if (!current || current.aborted || reading.current) return;
    reading.current = true;
    try {
      const answer = await latest.current.read(current);
      if (current.aborted) return;
      setValue(() => answer);
      setError("");
    } catch (err) {
      if (!current.aborted && !isAbort(err)) setError(latest.current.fail(err));
    } finally {
      reading.current = false;
    }
  };
  useEffect(() => {
    const abort = new AbortController();
    signal.current = abort.signal;
    void tick();
    return () => abort.abort();
  }, []);
  useInterval(() => void tick(), ms);
  return { value, error };
}
