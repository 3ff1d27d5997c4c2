import { useState } from "preact/hooks";
import { isFinal, RunState, type Run, type RunJob } from "@otto/sdk";
import { formatDuration, formatTime, stateClass, stateName } from "./format.ts";
import { JobGraph } from "./job-graph.tsx";
import { Link } from "./link.tsx";
import { navigate, runPath } from "./route.ts";
import { useSession } from "./session-context.ts";
import { useWatchedRun } from "./watch-run.ts";

export function RunPage(props: { runId: string }) {
  const session = useSession();
  const { client, fail } = session;
  const watched = useWatchedRun(client, props.runId, fail);
  const [actionError, setActionError] = useState("");
  const [busy, setBusy] = useState(false);
  const run = watched.run;
  const writer = session.may("runs:write");

  // Cancel, rerun, approve, reject: Otto's answer (permission_denied for a
  // reader's token, say) is shown as it is.
  const act = async (action: () => Promise<Run | undefined>) => {
    setBusy(true);
    setActionError("");
    try {
      const answered = await action();
      if (answered && answered.id !== props.runId) navigate(runPath(answered.id));
      else watched.reload();
    } catch (err) {
      setActionError(fail(err));
    } finally {
      setBusy(false);
    }
  };
  const decide = (job: RunJob, approve: boolean) =>
    act(async () =>
      approve
        ? (await client.runs.approveJob({ runId: props.runId, job: job.name })).run
        : (await client.runs.rejectJob({ runId: props.runId, job: job.name })).run,
    );

  return (
    <main class="run-page">
      <p class="crumbs">
        <Link href="/">Runs</Link> / run
      </p>
      {watched.error && (
        <p class="error" role="alert">
          {watched.error}
        </p>
      )}
      {run === undefined ? (
        !watched.error && <p class="loading">Loading…</p>
      ) : (
        <>
          <header class="page-header">
            <h1 class="run-title">
              <span class={stateClass(run.state)} data-testid="run-state">
                {stateName(run.state)}
              </span>{" "}
              <span class="run-name">{run.name || run.id}</span>
            </h1>
            <div class="actions">
              {writer && !isFinal(run.state) && (
                <button type="button" class="cancel" disabled={busy} onClick={() => act(async () => (await client.runs.cancelRun({ runId: run.id })).run)}>
                  Cancel
                </button>
              )}
              {writer && isFinal(run.state) && (
                <button type="button" class="rerun" disabled={busy} onClick={() => act(async () => (await client.runs.rerunRun({ runId: run.id })).run)}>
                  Rerun
                </button>
              )}
              {writer && isFinal(run.state) && run.state !== RunState.SUCCEEDED && (
                <button
                  type="button"
                  class="rerun-failed"
                  disabled={busy}
                  onClick={() => act(async () => (await client.runs.rerunRun({ runId: run.id, failedOnly: true })).run)}
                >
                  Rerun failed
                </button>
              )}
            </div>
          </header>
          {actionError && (
            <p class="error action-error" role="alert">
              {actionError}
            </p>
          )}
          <RunFacts run={run} />
          <JobGraph run={run} waits={watched.waits} busy={busy} onDecide={writer ? decide : undefined} />
        </>
      )}
    </main>
  );
}

function RunFacts({ run }: { run: Run }) {
  const source = run.source;
  return (
    <dl class="facts">
      <dt>Run</dt>
      <dd class="mono">{run.id}</dd>
      {source?.project && (
        <>
          <dt>Project</dt>
          <dd>{source.project}</dd>
        </>
      )}
      {(source?.branch || source?.tag) && (
        <>
          <dt>{source.branch ? "Branch" : "Tag"}</dt>
          <dd>{source.branch || source.tag}</dd>
        </>
      )}
      {source?.sha && (
        <>
          <dt>Commit</dt>
          <dd class="mono">{source.sha}</dd>
        </>
      )}
      {run.rerunOf && (
        <>
          <dt>Rerun of</dt>
          <dd>
            <Link href={runPath(run.rerunOf)} class="mono">
              {run.rerunOf}
            </Link>
          </dd>
        </>
      )}
      <dt>Created</dt>
      <dd>{formatTime(run.createdAt)}</dd>
      {run.startedAt && (
        <>
          <dt>Duration</dt>
          <dd>{formatDuration(run.startedAt, run.finishedAt)}</dd>
        </>
      )}
      {run.message && (
        <>
          <dt>Message</dt>
          <dd class="message">{run.message}</dd>
        </>
      )}
    </dl>
  );
}
