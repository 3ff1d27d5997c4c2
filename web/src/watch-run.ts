import { useEffect, useRef, useState } from "preact/hooks";
import { isFinal, type OttoClient, type Run, type WaitingFor } from "@otto/sdk";
import { isAbort } from "./session.ts";

export interface WatchedRun {
  run: Run | undefined;
  // Why jobs that have not started wait, as WatchRun last said.
  waits: Map<string, WaitingFor> | undefined;
  error: string;
  reload(): void;
}

// A run as it is now: read with GetRun, and read again after the events of
// its journal (WatchRun) until it is final.
export function useWatchedRun(client: OttoClient, runId: string, fail: (err: unknown) => string): WatchedRun {
  const [run, setRun] = useState<Run | undefined>(undefined);
  const [waits, setWaits] = useState<Map<string, WaitingFor> | undefined>(undefined);
  const [error, setError] = useState("");
  const reloadRef = useRef<() => void>(() => {});

  useEffect(() => {
    const abort = new AbortController();
    const { signal } = abort;
    let pending: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const answer = await client.runs.getRun({ runId }, { signal });
        if (!signal.aborted) {
          setRun(answer.run);
          setError("");
        }
        return answer.run;
      } catch (err) {
        if (!signal.aborted && !isAbort(err)) setError(fail(err));
        return undefined;
      }
    };
    // Events come in bursts: one read after each short quiet spell.
    const loadSoon = () => {
      if (pending === undefined) pending = setTimeout(() => ((pending = undefined), void load()), 150);
    };
    reloadRef.current = () => void load();
    const watch = async () => {
      setRun(undefined);
      setWaits(undefined);
      let current = await load();
      let retryMs = 1_000;
      while (!signal.aborted && current && !isFinal(current.state)) {
        try {
          for await (const message of client.runs.watchRun({ runId, withWaits: true }, { signal, timeoutMs: 0 })) {
            retryMs = 1_000;
            if (message.waits) setWaits(new Map(message.waits.jobs.map((wait) => [wait.job, wait.waitingFor!])));
            if (message.event) loadSoon();
          }
        } catch (err) {
          if (signal.aborted || isAbort(err)) return;
          setError(fail(err));
          await new Promise((resolve) => setTimeout(resolve, retryMs));
          retryMs = Math.min(retryMs * 2, 15_000);
        }
        current = await load();
      }
    };
    void watch();
    return () => {
      abort.abort();
      clearTimeout(pending);
    };
  }, [client, runId]);

  return { run, waits, error, reload: () => reloadRef.current() };
}
