import type { Caller } from "./caller.ts";

// The header in which the gateway tells a coordinator who approved or
// rejected a job: the API token it authenticated (the coordinator takes
// these calls from the gateway alone).
export const decidedByHeader = "otto-decided-by";

export function describeDecider(caller: Caller): string {
  switch (caller.kind) {
    case "api":
      return `token "${caller.name}" (${caller.tokenId})`;
    case "service":
      return `Otto's ${caller.service}`;
    default:
      return "an unauthenticated caller (Otto runs without TLS)";
  }
}
