import { ExpiryScope as ProtoExpiryScope } from "@otto/gen/v1/retention_service_pb";

// What of a run retention deletes: everything it stored (its rows in the
// coordinator too), or only its logs' text or its artifacts' bytes (their
// rows stay, marked expired, so that reads can say what became of them).
// The coordinator decides; the objects service, the only one that talks to
// object storage, deletes (RetentionStoreService.ExpireObjects).
export type ExpiryScope = "run" | "logs" | "artifacts";

// What the objects service did with a batch of runs.
export interface Expired {
  // Runs left as they were: a log of theirs is still open or not yet
  // archived, so the next sweep deals with them.
  deferredRunIds: string[];
  logs: number;
  artifacts: number;
  // Object storage keys deleted.
  objects: number;
}

const onTheWire: Record<ExpiryScope, ProtoExpiryScope> = {
  run: ProtoExpiryScope.RUN,
  logs: ProtoExpiryScope.LOGS,
  artifacts: ProtoExpiryScope.ARTIFACTS,
};

export function expiryScopeToProto(scope: ExpiryScope): ProtoExpiryScope {
  return onTheWire[scope];
}

// Unspecified and unknown scopes are refused by the request's rules before this.
export function expiryScopeFromProto(scope: ProtoExpiryScope): ExpiryScope {
  const found = (Object.keys(onTheWire) as ExpiryScope[]).find((name) => onTheWire[name] === scope);
  if (!found) throw new Error(`no expiry scope ${scope}`);
  return found;
}
