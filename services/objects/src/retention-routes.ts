import type { ConnectRouter } from "@connectrpc/connect";
import { RetentionStoreService } from "@otto/gen/v1/retention_service_pb";
import type { Pool } from "@otto/kit/db";
import { expiryScopeFromProto } from "@otto/kit/expiry-scope";
import { expireObjects } from "./object-expiry.ts";
import type { ObjectStore } from "./object-store.ts";

export function retentionRoutes(pool: Pool, store: ObjectStore) {
  return (router: ConnectRouter) => {
    router.service(RetentionStoreService, {
      async expireObjects(req) {
        const expired = await expireObjects(pool, store, req.runIds, expiryScopeFromProto(req.scope));
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
