import { RunState } from "@otto/gen/v1/run_pb";

export { finalStates, isFinal } from "@otto/contracts/run-state";
export { RunState };
