import { useEffect, useRef, useState } from "preact/hooks";
import type { OttoClient, Run, RunState } from "@otto/sdk";
import { followRuns } from "./follow-runs.ts";
import { millisOf } from "./format.ts";
import { isAbort } from "./session.ts";

export interface RunsQuery {
  pipeline: string;
  // RunState.UNSPECIFIED (0): every state.
  state: RunState;
}

export interface LiveRuns {
  // Newest first; undefined until the first page is read.
  runs: Run[] | undefined;
  error: string;
  hasOlder: boolean;
  loadingOlder: boolean;
  loadOlder(): void;
}

const pageSize = 25;

// The newest runs that match `query`, kept up to date by WatchRuns: the
// stream is opened first and the list read once its first cursor arrives,
// so no change between the two is missed. A run an event names is read
// again (GetRun) when it is new or its state moved; a run that no longer
// matches the state asked for leaves the list, one that now does joins it.
export function useLiveRuns(client: OttoClient, query: RunsQuery, fail: (err: unknown) => string): LiveRuns {
  const [runs, setRuns] = useState<Run[] | undefined>(undefined);
  const [error, setError] = useState("");
  const [next, setNext] = useState("");
  const [loadingOlder, setLoadingOlder] = useState(false);
  const signalRef = useRef<AbortSignal | undefined>(undefined);

  useEffect(() => {
    const abort = new AbortController();
    const { signal } = abort;
    signalRef.current = signal;
    const shown = new Map<string, RunState>();
    const reading = new Map<string, boolean>();
    const matches = (run: Run) => (query.pipeline === "" || run.name === query.pipeline) && (query.state === 0 || run.state === query.state);
    const put = (run: Run) => {
      shown.set(run.id, run.state);
      setRuns((list) => placed(list ?? [], run, matches(run)));
    };
    // One GetRun at a time per run; an event during it asks for one more.
    const read = async (runId: string) => {
      if (reading.has(runId)) return void reading.set(runId, true);
      reading.set(runId, false);
      try {
        do {
          reading.set(runId, false);
          const { run } = await client.runs.getRun({ runId }, { signal });
          if (run && !signal.aborted) put(run);
        } while (reading.get(runId) && !signal.aborted);
      } catch (err) {
        if (!signal.aborted && !isAbort(err)) setError(fail(err));
      } finally {
        reading.delete(runId);
      }
    };
    const follow = () =>
      followRuns(client, query.pipeline, signal, {
        async start() {
          const answer = await client.runs.listRuns({ pageSize, pipeline: query.pipeline, state: query.state }, { signal });
          if (signal.aborted) return;
          shown.clear();
          for (const run of answer.runs) shown.set(run.id, run.state);
          setRuns((list) => newestPage(answer.runs, list ?? [], matches));
          setNext(answer.nextPageToken);
          setError("");
        },
        changed(run) {
          if (shown.get(run.id) !== run.state) void read(run.id);
        },
        failed: (err) => setError(fail(err)),
      });
    setRuns(undefined);
    void follow();
    return () => abort.abort();
  }, [client, query.pipeline, query.state]);

  const loadOlder = async () => {
    const signal = signalRef.current;
    setLoadingOlder(true);
    try {
      const answer = await client.runs.listRuns({ pageSize, pageToken: next, pipeline: query.pipeline, state: query.state }, { signal });
      setRuns((list) => [...(list ?? []), ...answer.runs.filter((run) => !list?.some((shown) => shown.id === run.id))]);
      setNext(answer.nextPageToken);
    } catch (err) {
      if (!signal?.aborted && !isAbort(err)) setError(fail(err));
    } finally {
      setLoadingOlder(false);
    }
  };

  return { runs, error, hasOlder: next !== "", loadingOlder, loadOlder: () => void loadOlder() };
}

// The list with `run` in its place (newest first), or without it when it
// no longer matches.
function placed(list: Run[], run: Run, matches: boolean): Run[] {
  const rest = list.filter((shown) => shown.id !== run.id);
  if (!matches) return rest;
  const created = millisOf(run.createdAt) ?? 0;
  const at = rest.findIndex((shown) => (millisOf(shown.createdAt) ?? 0) < created);
  return at < 0 ? [...rest, run] : [...rest.slice(0, at), run, ...rest.slice(at)];
}

// The newest page as read now, then the older runs shown before that still match.
function newestPage(newest: Run[], shown: Run[], matches: (run: Run) => boolean): Run[] {
  const ids = new Set(newest.map((run) => run.id));
  const oldestNew = millisOf(newest.at(-1)?.createdAt) ?? Infinity;
  const older = shown.filter((run) => !ids.has(run.id) && matches(run) && (millisOf(run.createdAt) ?? 0) < oldestNew);
  return [...newest.filter(matches), ...older];
}
