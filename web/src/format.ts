// How times, durations and states read on the page.
import { RunState, runStateName, type RunSource } from "@otto/sdk";

interface TimestampLike {
  seconds: bigint;
  nanos: number;
}

export function millisOf(time: TimestampLike | undefined): number | undefined {
  if (!time || (time.seconds === 0n && time.nanos === 0)) return undefined;
  return Number(time.seconds) * 1000 + Math.floor(time.nanos / 1e6);
}

export function formatTime(time: TimestampLike | undefined): string {
  const ms = millisOf(time);
  return ms === undefined ? "" : new Date(ms).toLocaleString();
}

// From start to finish, or to now while it goes on.
export function formatDuration(start: TimestampLike | undefined, end: TimestampLike | undefined, now = Date.now()): string {
  const from = millisOf(start);
  if (from === undefined) return "";
  const seconds = Math.max(0, Math.round(((millisOf(end) ?? now) - from) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

export function stateName(state: RunState): string {
  return runStateName(state);
}

// For CSS: state-running, state-failed, ...
export function stateClass(state: RunState): string {
  return `state state-${runStateName(state).toLowerCase()}`;
}

export const shownStates: RunState[] = [
  RunState.QUEUED,
  RunState.WAITING,
  RunState.RUNNING,
  RunState.SUCCEEDED,
  RunState.FAILED,
  RunState.CANCELED,
  RunState.SKIPPED,
];

// What a run of a forge's was made from, as a list shows it: the branch,
// the tag, or the pull request's number.
export function refOf(source: RunSource | undefined): string {
  return source?.branch || source?.tag || (source?.pullRequest ? `#${source.pullRequest.number}` : "");
}

export function shortSha(source: RunSource | undefined): string {
  return source?.sha ? source.sha.slice(0, 7) : "";
}
