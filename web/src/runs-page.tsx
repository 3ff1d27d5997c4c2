import { useEffect, useState } from "preact/hooks";
import { isFinal, RunState, type OttoClient, type Run } from "@otto/sdk";
import { formatDuration, formatTime, refOf, shortSha, shownStates, stateClass, stateName } from "./format.ts";
import { Link } from "./link.tsx";
import { useLiveRuns } from "./live-runs.ts";
import { navigate, runPath } from "./route.ts";
import { useSession } from "./session-context.ts";
import { useInterval } from "./use-interval.ts";

export function RunsPage(props: { state: string; pipeline: string }) {
  const { client, fail } = useSession();
  const wanted = shownStates.find((state) => stateName(state).toLowerCase() === props.state.toLowerCase());
  const live = useLiveRuns(client, { pipeline: props.pipeline, state: wanted ?? RunState.UNSPECIFIED }, fail);
  const pipelines = usePipelineNames(client, props.pipeline);
  const filterBy = (change: { state?: string; pipeline?: string }) => {
    const query = new URLSearchParams();
    const state = change.state ?? (wanted === undefined ? "" : stateName(wanted).toLowerCase());
    const pipeline = change.pipeline ?? props.pipeline;
    if (state) query.set("state", state);
    if (pipeline) query.set("pipeline", pipeline);
    navigate(query.size > 0 ? `/?${query}` : "/");
  };
  const runs = live.runs;
  // The durations of runs going on grow by the second.
  const [, setNow] = useState(0);
  useInterval(() => setNow(Date.now()), runs?.some((run) => !isFinal(run.state)) ? 1_000 : 60_000);
  return (
    <main class="runs-page">
      <header class="page-header">
        <h1>Runs</h1>
        <label>
          State{" "}
          <select
            name="state"
            value={wanted === undefined ? "" : stateName(wanted).toLowerCase()}
            onChange={(event) => filterBy({ state: (event.currentTarget as HTMLSelectElement).value })}
          >
            <option value="">all</option>
            {shownStates.map((state) => (
              <option value={stateName(state).toLowerCase()}>{stateName(state).toLowerCase()}</option>
            ))}
          </select>
        </label>
        <label>
          Pipeline{" "}
          <select name="pipeline" value={props.pipeline} onChange={(event) => filterBy({ pipeline: (event.currentTarget as HTMLSelectElement).value })}>
            <option value="">all</option>
            {pipelines.map((name) => (
              <option value={name}>{name}</option>
            ))}
          </select>
        </label>
      </header>
      {live.error && (
        <p class="error" role="alert">
          {live.error}
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
            {runs.map((run) => (
              <RunRow key={run.id} run={run} />
            ))}
          </tbody>
        </table>
      )}
      {runs !== undefined && runs.length === 0 && <p class="empty">{wanted === undefined && props.pipeline === "" ? "No runs yet." : "No runs match."}</p>}
      {live.hasOlder && (
        <button type="button" class="older" onClick={live.loadOlder} disabled={live.loadingOlder}>
          Older runs
        </button>
      )}
    </main>
  );
}

// The names to filter by: those ListPipelines knows, and the one asked for.
function usePipelineNames(client: OttoClient, current: string): string[] {
  const [names, setNames] = useState<string[]>([]);
  useEffect(() => {
    const abort = new AbortController();
    client.runs.listPipelines({}, { signal: abort.signal }).then(
      (answer) => setNames(answer.pipelines.map((pipeline) => pipeline.name)),
      () => {},
    );
    return () => abort.abort();
  }, [client]);
  return current === "" || names.includes(current) ? names : [current, ...names];
}

function RunRow({ run }: { run: Run }) {
  const source = run.source;
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
      <td>{refOf(source)}</td>
      <td class="sha" title={source?.sha ?? ""}>
        {shortSha(source)}
      </td>
      <td>{formatTime(run.startedAt ?? run.createdAt)}</td>
      <td>{run.state === RunState.QUEUED ? "" : formatDuration(run.startedAt, run.finishedAt)}</td>
    </tr>
  );
}
