import { isFinal, RunState } from "./states.ts";

// Whether a job whose turn may have come runs now, waits, or ends unstarted:
// the one rule for what a job's needs (and its run's cancellation) let it do.
export type Gate = { kind: "wait" } | { kind: "run" } | { kind: "end"; to: RunState; message: string };

export interface GatedJob {
  name: string;
  state: RunState;
  needs: string[];
}

const wait: Gate = { kind: "wait" };
const run: Gate = { kind: "run" };
const canceled: Gate = { kind: "end", to: RunState.CANCELED, message: "run canceled before the job started" };

export function gateOf(job: GatedJob, needs: GatedJob[], cancelRequested: boolean): Gate {
  if (cancelRequested) return canceled;
  const blocker = needs.find((need) => isFinal(need.state) && need.state !== RunState.SUCCEEDED);
  if (blocker) return { kind: "end", to: RunState.SKIPPED, message: `skipped: needs "${blocker.name}", which ${what[blocker.state]}` };
  return needs.every((need) => need.state === RunState.SUCCEEDED) ? run : wait;
}

const what: Partial<Record<RunState, string>> = {
  [RunState.FAILED]: "failed",
  [RunState.CANCELED]: "was canceled",
  [RunState.SKIPPED]: "was skipped",
};
