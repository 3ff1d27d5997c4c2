import type { ServiceImpl } from "@connectrpc/connect";
import type { AdminService } from "@otto/gen/v1/admin_service_pb";
import type { RetentionPolicy } from "@otto/kit/retention-config";
import type { SweepCounts } from "./engine/sweep-retention.ts";

// AdminService.SweepRetention, which the gateway passes on to a coordinator:
// a sweep now, as the daily one would do it.
export function retentionRoutes(policy: RetentionPolicy, sweep: () => Promise<SweepCounts>): Partial<ServiceImpl<typeof AdminService>> {
  return {
    async sweepRetention() {
      const counts = await sweep();
      return {
        runsDeleted: BigInt(counts.runs),
        logsDeleted: BigInt(counts.logs),
        artifactsDeleted: BigInt(counts.artifacts),
        objectsDeleted: BigInt(counts.objects),
        runsDeferred: BigInt(counts.deferredRuns),
        policy: { runDays: policy.runDays, logDays: policy.logDays, artifactDays: policy.artifactDays },
      };
    },
  };
}
