import { useEffect, useRef } from "preact/hooks";

// Calls `tick` every `ms` (the latest `tick` given), while mounted.
export function useInterval(tick: () => void, ms: number): void {
  const latest = useRef(tick);
  latest.current = tick;
  useEffect(() => {
    const timer = setInterval(() => latest.current(), ms);
    return () => clearInterval(timer);
  }, [ms]);
}
