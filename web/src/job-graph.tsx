import { RunState, type Run, type RunJob, type WaitingFor } from "@otto/sdk";
import { formatDuration, stateClass, stateName } from "./format.ts";
import { drawGraph, pathOf } from "./graph-drawing.ts";
import { layOutJobs } from "./graph-layout.ts";
import { Link } from "./link.tsx";
import { jobPath } from "./route.ts";

const boxWidth = 240;
const boxHeight = 104;
const gapX = 56;
const gapY = 20;
const laneGap = 12;

// The run's jobs as boxes in columns by `needs`, with a line from each job
// to each job that needs it (graph-drawing.ts routes them around the boxes).
export function JobGraph(props: {
  run: Run;
  waits: Map<string, WaitingFor> | undefined;
  busy: boolean;
  // Unset when the token may not approve or reject.
  onDecide?: (job: RunJob, approve: boolean) => void;
}) {
  const { run } = props;
  const drawn = drawGraph(layOutJobs(run.jobs), { boxWidth, boxHeight, gapX, gapY, laneGap });
  const { width, height } = drawn;
  return (
    <section class="graph-scroll">
      <div class="graph" style={{ width: `${width}px`, height: `${height}px` }}>
        <svg class="edges" width={width} height={height} aria-hidden="true">
          {drawn.edges.map((edge) => (
            <path data-edge={`${edge.from}->${edge.to}`} d={pathOf(edge.hops)} />
          ))}
        </svg>
        {run.jobs.map((job) => {
          const place = drawn.boxes.get(job.name)!;
          return (
            <JobBox
              key={job.name}
              run={run}
              job={job}
              waiting={waitingText(job, props.waits)}
              left={place.x}
              top={place.y}
              busy={props.busy}
              onDecide={props.onDecide}
            />
          );
        })}
      </div>
    </section>
  );
}

function JobBox(props: { run: Run; job: RunJob; waiting: string; left: number; top: number; busy: boolean; onDecide?: (job: RunJob, approve: boolean) => void }) {
  const { job, onDecide } = props;
  return (
    <article
      class={`job job-${stateName(job.state).toLowerCase()}`}
      data-job={job.name}
      style={{ left: `${props.left}px`, top: `${props.top}px`, width: `${boxWidth}px`, height: `${boxHeight}px` }}
    >
      <header>
        <Link href={jobPath(props.run.id, job.name)} class="job-name" title={job.name}>
          {job.name}
        </Link>
        <span class={stateClass(job.state)} data-testid="job-state">
          {stateName(job.state)}
        </span>
      </header>
      <p class="job-facts">
        {job.attempt > 0 && <span class="attempt">attempt {job.attempt}</span>}
        {job.startedAt && <span class="duration">{formatDuration(job.startedAt, job.finishedAt)}</span>}
      </p>
      {job.agentId && (
        <p class="agent" title={job.agentId}>
          on {job.agentId}
        </p>
      )}
      {props.waiting && (
        <p class="waiting" title={props.waiting}>
          {props.waiting}
        </p>
      )}
      {job.message && (
        <p class="job-message" title={job.message}>
          {job.message}
        </p>
      )}
      {job.state === RunState.WAITING && onDecide && (
        <p class="decide">
          <button type="button" class="approve" disabled={props.busy} onClick={() => onDecide(job, true)}>
            Approve
          </button>
          <button type="button" class="reject" disabled={props.busy} onClick={() => onDecide(job, false)}>
            Reject
          </button>
        </p>
      )}
    </article>
  );
}

// Why a job that has not started waits: WatchRun's latest word, else GetRun's.
function waitingText(job: RunJob, waits: Map<string, WaitingFor> | undefined): string {
  if (job.state !== RunState.QUEUED) return "";
  const waiting = waits ? waits.get(job.name) : job.waitingFor;
  return waiting?.text ?? "";
}
