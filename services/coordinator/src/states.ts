import { RunState } from "../../../gen/otto/v1/run_pb.ts";

export const finalStates: ReadonlySet<RunState> = new Set([
  RunState.SUCCEEDED,
  RunState.FAILED,
  RunState.CANCELED,
]);

export function isFinal(state: number): boolean {
  return finalStates.has(state as RunState);
}

export { RunState };
