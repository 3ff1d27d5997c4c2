import { Code, ConnectError } from "@connectrpc/connect";
import { runStateName } from "@otto/contracts/run-state";
import { RunState } from "./states.ts";

// The states a task (a job's claim ticket for agents) moves through.
export type TaskStatus = "pending" | "assigned" | "done";

export type Entity = "run" | "job" | "step" | "task";

interface Machine<S> {
  // The state an entity is created in.
  initial: S;
  // Every legal move: from-state -> the states it may go to.
  moves: ReadonlyMap<S, readonly S[]>;
}

const { QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED, WAITING, SKIPPED } = RunState;

// Every state change of the engine, and nothing else. A run starts with its
// first claimed job and ends when its last job does (canceled before any
// started, or failed before it had jobs because its pipeline file could not
// be read or parsed at its commit: straight from QUEUED). A job runs when an agent claims it, goes
// back to QUEUED for a retry or a hand-back, is SKIPPED unstarted when its
// condition says so (by default: a job it needs did not succeed), and is
// CANCELED unstarted when its run was canceled. A step may be reported
// final without a RUNNING report (a batch holds both), and is CANCELED
// unstarted when its job ended first.
export const transitions: { run: Machine<RunState>; job: Machine<RunState>; step: Machine<RunState>; task: Machine<TaskStatus> } = {
  run: {
    initial: QUEUED,
    moves: new Map([
      // QUEUED -> SUCCEEDED: every job was skipped (or reused) before any ran.
      [QUEUED, [RUNNING, SUCCEEDED, FAILED, CANCELED]],
      [RUNNING, [SUCCEEDED, FAILED, CANCELED]],
    ]),
  },
  job: {
    initial: QUEUED,
    moves: new Map([
      // QUEUED -> SUCCEEDED: a job that succeeded in the run a rerun of
      // failed jobs repeats is reused, not run again. QUEUED -> WAITING: its
      // needs are done and it waits for approval, then goes on (QUEUED),
      // is rejected or not approved in time (FAILED), or its run is
      // canceled. QUEUED -> SKIPPED: its condition was false, or (without
      // one) a job it needs did not succeed. QUEUED -> FAILED: no live agent
      // could take it for OTTO_UNMATCHED_JOB_TIMEOUT.
      [QUEUED, [RUNNING, SUCCEEDED, WAITING, CANCELED, SKIPPED, FAILED]],
      [WAITING, [QUEUED, FAILED, CANCELED]],
      [RUNNING, [SUCCEEDED, FAILED, CANCELED, QUEUED]],
    ]),
  },
  step: {
    initial: QUEUED,
    moves: new Map([
      [QUEUED, [RUNNING, SUCCEEDED, FAILED, CANCELED, SKIPPED]],
      [RUNNING, [SUCCEEDED, FAILED, CANCELED, QUEUED]],
      // A job's retry puts every step back in the queue.
      [SUCCEEDED, [QUEUED]],
      [FAILED, [QUEUED]],
      [CANCELED, [QUEUED]],
    ]),
  },
  task: {
    initial: "pending",
    moves: new Map<TaskStatus, TaskStatus[]>([
      ["pending", ["assigned", "done"]],
      ["assigned", ["done", "pending"]],
    ]),
  },
};

export function isLegal(entity: Entity, from: RunState | TaskStatus, to: RunState | TaskStatus): boolean {
  const machine = transitions[entity] as Machine<RunState | TaskStatus>;
  return machine.moves.get(from)?.includes(to) ?? false;
}

export function stateName(state: RunState | TaskStatus): string {
  return typeof state === "string" ? state : runStateName(state);
}

// A move the table does not allow, or one whose entity was not in the
// state its caller read: a bug in the engine, never a request to ignore.
export class IllegalTransitionError extends ConnectError {
  constructor(what: string, from: RunState | TaskStatus | undefined, to: RunState | TaskStatus, why = "not an allowed transition") {
    const fromText = from === undefined ? "(missing)" : stateName(from);
    super(`illegal state change of ${what}: ${fromText} -> ${stateName(to)} (${why})`, Code.Internal);
  }

  // ConnectError decides instanceof by its name, which this keeps, so that
  // it travels as a ConnectError.
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof Error && Object.getPrototypeOf(value) === IllegalTransitionError.prototype;
  }
}
