import type { ConnectRouter } from "@connectrpc/connect";
import { ExpiryScope, RetentionStoreService } from "../../../gen/otto/v1/retention_service_pb.ts";
import type { Pool } from "../../kit/src/db.ts";
import { expireObjects, type ExpiryScope as Scope } from "./object-expiry.ts";
import type { ObjectStore } from "./object-store.ts";

// Unspecified and unknown scopes are refused by the request's rules.
const scopes: Partial<Record<ExpiryScope, Scope>> = {
  [ExpiryScope.RUN]: "run",
  [ExpiryScope.LOGS]: "logs",
  [ExpiryScope.ARTIFACTS]: "artifacts",
};

export function retentionRoutes(pool: Pool, store: ObjectStore) {
  return (router: ConnectRouter) => {
    router.service(RetentionStoreService, {
      async expireObjects(req) {
        const expired = await expireObjects(pool, store, req.runIds, scopes[req.scope]!);
        return {
          deferredRunIds: expired.deferredRunIds,
          logs: BigInt(expired.logs),
          artifacts: BigInt(expired.artifacts),
          objects: BigInt(expired.objects),
        };
      },
    });
  };
}
