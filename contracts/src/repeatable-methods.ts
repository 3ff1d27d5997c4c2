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

// Whether a call may be made again whatever became of the first (it was
// answered unavailable, or its answer was lost): its method's proto declares
// it free of side effects or idempotent, the method is fenced, or it is a
// SubmitRun that names its request_id (one request id stores one run). Pass
// the request to know of the last; without it, only the method counts.
export function mayRepeat(method: DescMethod, request?: unknown): boolean {
  if (method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN) return true;
  const name = `${method.parent.typeName}.${method.name}`;
  if (fencedMethods.has(name)) return true;
  return name === "otto.v1.RunService.SubmitRun" && typeof (request as { requestId?: unknown } | undefined)?.requestId === "string" && (request as { requestId: string }).requestId !== "";
}
