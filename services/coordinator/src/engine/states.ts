import { RunState } from "../../../../gen/otto/v1/run_pb.ts";

export { finalStates, isFinal } from "@otto/contracts/run-state";
export { RunState };
