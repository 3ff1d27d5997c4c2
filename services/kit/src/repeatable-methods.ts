import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

// Methods that may be called twice without harm although their protos say
// nothing of it (the released contract fixes their idempotency level): each
// is fenced by attempt or by sequence number.
const fencedMethods = new Set([
  "otto.v1.AgentService.HeartbeatTask",
  "otto.v1.AgentService.ReportSteps",
  "otto.v1.AgentService.CompleteTask",
  "otto.v1.AgentService.HandBackTask",
  "otto.v1.LogStoreService.AppendLog",
  "otto.v1.LogStoreService.CloseLog",
  "otto.v1.ArtifactStoreService.CreateArtifactUpload",
  "otto.v1.ArtifactStoreService.CompleteArtifactUpload",
  "otto.v1.ArtifactStoreService.ListNeededArtifacts",
  "otto.v1.RegistryService.Register",
  "otto.v1.RegistryService.Renew",
  "otto.v1.RegistryService.Deregister",
]);

// Whether a call of `method` may be made again whatever became of the first:
// its proto declares it free of side effects or idempotent, or it is fenced.
export function mayRepeat(method: DescMethod): boolean {
  return method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN || fencedMethods.has(`${method.parent.typeName}.${method.name}`);
}
