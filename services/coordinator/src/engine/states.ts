import { RunState } from "../../../../gen/otto/v1/run_pb.ts";

export { finalStates, isFinal } from "../../../kit/src/run-state.ts";
export { RunState };
