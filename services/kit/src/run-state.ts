import { RunStateSchema, type RunState } from "../../../gen/otto/v1/run_pb.ts";

// "RUN_STATE_SUCCEEDED" -> "SUCCEEDED"
export function runStateName(state: RunState): string {
  const name = RunStateSchema.values.find((v) => v.number === state)?.name ?? String(state);
  return name.replace(/^RUN_STATE_/, "");
}
