import { RunState, RunStateSchema } from "@otto/gen/v1/run_pb";

export const finalStates: readonly RunState[] = [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED, RunState.SKIPPED];

// Also for states read from the database as plain numbers.
export function isFinal(state: RunState | number): boolean {
  return (finalStates as readonly number[]).includes(state);
}

// "RUN_STATE_SUCCEEDED" -> "SUCCEEDED"
export function runStateName(state: RunState): string {
  const name = RunStateSchema.values.find((v) => v.number === state)?.name ?? String(state);
  return name.replace(/^RUN_STATE_/, "");
}
