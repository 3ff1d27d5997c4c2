import { conditionStatusFunctions, evaluateCondition, parseCondition, type JobCondition } from "@otto/contracts/job-condition";
import { isFinal, RunState } from "./states.ts";

// Whether a job whose turn may have come runs now, waits, or ends unstarted:
// the one rule for what a job's needs, its condition (`if:`) and its run's
// cancellation let it do.
//  - Without a condition (success()): it runs once every need succeeded, and
//    is SKIPPED as soon as one failed, was canceled or was skipped.
//  - With one: it waits until every need is final, then runs if the
//    condition holds, else is SKIPPED. failure() is true when a job it
//    needs, directly or through others, failed.
//  - Once its run is canceled it is CANCELED, unless its condition calls
//    always() or cancelled(): then it is judged as above, with cancelled().
export type Gate = { kind: "wait" } | { kind: "run" } | { kind: "end"; to: RunState; message: string };

export interface GatedJob {
  name: string;
  state: RunState;
  needs: string[];
  // The job's `if` and what it may read, as stored with the job; null: none.
  condition: StoredCondition | null;
}

export interface StoredCondition {
  text: string;
  branch: string;
  event: string;
  env: Record<string, string>;
}

const wait: Gate = { kind: "wait" };
const run: Gate = { kind: "run" };
// Also for every job of a run canceled while it waited in its concurrency
// group's line: none of them may start, whatever its condition.
export const canceled: Gate = { kind: "end", to: RunState.CANCELED, message: "run canceled before the job started" };

export function gateOf(job: GatedJob, needs: GatedJob[], cancelRequested: boolean, failedAbove: () => boolean): Gate {
  if (job.condition === null) {
    if (cancelRequested) return canceled;
    const blocker = needs.find((need) => isFinal(need.state) && need.state !== RunState.SUCCEEDED);
    if (blocker) return { kind: "end", to: RunState.SKIPPED, message: `skipped: needs "${blocker.name}", which ${what[blocker.state]}` };
    return needs.every((need) => need.state === RunState.SUCCEEDED) ? run : wait;
  }
  const condition = parsed(job.condition.text);
  const uses = conditionStatusFunctions(condition);
  if (cancelRequested && !uses.has("always") && !uses.has("cancelled")) return canceled;
  if (!needs.every((need) => isFinal(need.state))) return wait;
  const holds = evaluateCondition(condition, {
    success: needs.every((need) => need.state === RunState.SUCCEEDED),
    failure: failedAbove(),
    cancelled: cancelRequested,
    branch: job.condition.branch,
    event: job.condition.event,
    env: job.condition.env,
  });
  if (holds) return run;
  return cancelRequested ? canceled : { kind: "end", to: RunState.SKIPPED, message: `skipped: if: ${job.condition.text} is false` };
}

const what: Partial<Record<RunState, string>> = {
  [RunState.FAILED]: "failed",
  [RunState.CANCELED]: "was canceled",
  [RunState.SKIPPED]: "was skipped",
};

// Conditions were checked when the pipeline was stored; each text is parsed
// once per process.
const cache = new Map<string, JobCondition>();

function parsed(text: string): JobCondition {
  let condition = cache.get(text);
  if (!condition) {
    const result = parseCondition(text);
    if (!result.ok) throw new Error(`stored condition does not parse: ${result.message}`);
    if (cache.size >= 1000) cache.clear();
    cache.set(text, (condition = result.condition));
  }
  return condition;
}
