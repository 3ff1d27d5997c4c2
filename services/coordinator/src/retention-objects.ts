import { RetentionStoreService } from "@otto/gen/v1/retention_service_pb";
import { expiryScopeToProto } from "@otto/kit/expiry-scope";
import type { RegistryClient } from "@otto/kit/registry-client";
import type { ObjectExpiry } from "./engine/sweep-retention.ts";

// A batch of a sweep deletes at most a few thousand objects.
const batchTimeoutMs = 5 * 60_000;

// The sweep's object half, done by any objects service instance: only it
// talks to object storage. Asking again after a lost answer is harmless.
export function objectExpiryOver(registry: RegistryClient): ObjectExpiry {
  return {
    async expire(runIds, scope) {
      const expired = await registry.call(
        "objects",
        RetentionStoreService,
        (client) => client.expireObjects({ runIds, scope: expiryScopeToProto(scope) }, { timeoutMs: batchTimeoutMs }),
        { idempotent: true, retryForMs: 30_000 },
      );
      return {
        deferredRunIds: expired.deferredRunIds,
        logs: Number(expired.logs),
        artifacts: Number(expired.artifacts),
        objects: Number(expired.objects),
      };
    },
  };
}
