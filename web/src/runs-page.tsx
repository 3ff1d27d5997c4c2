import { useEffect, useRef, useState } from "preact/hooks";
import { isFinal, RunState, type Run } from "@otto/sdk";
import { formatDuration, formatTime, millisOf, shownStates, stateClass, stateName } from "./format.ts";
import { Link } from "./link.tsx";
import { navigate, runPath } from "./route.ts";
import { useSession } from "./session-context.ts";
import { useInterval } from "./use-interval.ts";

const pageSize = 25;

// Until the API can stream changes to the whole list, the newest page is
// read again every few seconds (more often while a shown run is not final).
const busyRefreshMs = 2_000;
const idleRefreshMs = 5_000;

export function RunsPage(props: { state: string }) {
  const { client, fail } = useSession();
  const [runs, setRuns] = useState<Run[] | undefined>(undefined);
  const [next, setNext] = useState("");
  const [error, setError] = useState("");
  const [loadingOlder, setLoadingOlder] = useState(false);
  const alive = useRef(true);
  // Once older pages are shown, their next page token is the one to keep.
  const olderLoaded = useRef(false);
  useEffect(() => () => void (alive.current = false), []);

  const refresh = async () => {
    try {
      const answer = await client.runs.listRuns({ pageSize });
      if (!alive.current) return;
      setRuns((shown) => mergeNewest(answer.runs, shown ?? []));
      if (!olderLoaded.current) setNext(answer.nextPageToken);
      setError("");
    } catch (err) {
      if (alive.current) setError(fail(err));
    }
  };
  useEffect(() => void refresh(), []);
  const busy = runs?.some((run) => !isFinal(run.state)) ?? false;
  useInterval(() => void refresh(), busy ? busyRefreshMs : idleRefreshMs);

  const older = async () => {
    setLoadingOlder(true);
    olderLoaded.current = true;
    try {
      const answer = await client.runs.listRuns({ pageSize, pageToken: next });
      setRuns((shown) => [...(shown ?? []), ...answer.runs.filter((run) => !shown?.some((s) => s.id === run.id))]);
      setNext(answer.nextPageToken);
    } catch (err) {
      setError(fail(err));
    } finally {
      setLoadingOlder(false);
    }
  };

  const wanted = shownStates.find((state) => stateName(state).toLowerCase() === props.state.toLowerCase());
  const shown = (runs ?? []).filter((run) => wanted === undefined || run.state === wanted);
  return (
    <main class="runs-page">
      <header class="page-header">
        <h1>Runs</h1>
        <label>
          State{" "}
          <select
            name="state"
            value={wanted === undefined ? "" : stateName(wanted).toLowerCase()}
            onChange={(event) => {
              const value = (event.currentTarget as HTMLSelectElement).value;
              navigate(value ? `/?state=${value}` : "/");
            }}
          >
            <option value="">all</option>
            {shownStates.map((state) => (
              <option value={stateName(state).toLowerCase()}>{stateName(state).toLowerCase()}</option>
            ))}
          </select>
        </label>
      </header>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {runs === undefined ? (
        <p class="loading">Loading…</p>
      ) : (
        <table class="runs">
          <thead>
            <tr>
              <th>State</th>
              <th>Pipeline</th>
              <th>Project</th>
              <th>Branch</th>
              <th>Commit</th>
              <th>Started</th>
              <th>Duration</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((run) => (
              <RunRow key={run.id} run={run} />
            ))}
          </tbody>
        </table>
      )}
      {runs !== undefined && shown.length === 0 && <p class="empty">{wanted === undefined ? "No runs yet." : "No runs in this state among those loaded."}</p>}
      {next !== "" && (
        <button type="button" class="older" onClick={older} disabled={loadingOlder}>
          Older runs
        </button>
      )}
    </main>
  );
}

function RunRow({ run }: { run: Run }) {
  const source = run.source;
  const branch = source?.branch || source?.tag || (source?.pullRequest ? `#${source.pullRequest.number}` : "");
  return (
    <tr class="run-row" data-run-id={run.id}>
      <td>
        <span class={stateClass(run.state)}>{stateName(run.state)}</span>
      </td>
      <td>
        <Link href={runPath(run.id)} class="run-name">
          {run.name || run.id}
        </Link>
        {run.rerunOf && <span class="tag">rerun</span>}
      </td>
      <td>{source?.project ?? ""}</td>
      <td>{branch}</td>
      <td class="sha" title={source?.sha ?? ""}>
        {source?.sha ? source.sha.slice(0, 7) : ""}
      </td>
      <td>{formatTime(run.startedAt ?? run.createdAt)}</td>
      <td>{run.state === RunState.QUEUED ? "" : formatDuration(run.startedAt, run.finishedAt)}</td>
    </tr>
  );
}

// The newest page as read now, then the older runs loaded before (newest first).
function mergeNewest(newest: Run[], shown: Run[]): Run[] {
  const ids = new Set(newest.map((run) => run.id));
  const oldestNew = millisOf(newest.at(-1)?.createdAt) ?? Infinity;
  const older = shown.filter((run) => !ids.has(run.id) && (millisOf(run.createdAt) ?? 0) < oldestNew);
  return [...newest, ...older];
}
