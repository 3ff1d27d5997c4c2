import type { DescMethod } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";

// Methods that may be called twice without harm although their protos say
// nothing of it (the released contract fixes their idempotency level):
// fenced by attempt or by sequence number, or the same the second time
// (a canceled run canceled, jobs already added answered as such, the same
// value set, an absent secret deleted, a sweep that finds what the first
// one left, a fork's commit approved under a request id of its own).
const fencedMethods = new Set([
  "otto.v1.RunService.CancelRun",
  "otto.v1.RunService.AddJobs",
  "otto.v1.AdminService.SetSecret",
  "otto.v1.AdminService.DeleteSecret",
  "otto.v1.AdminService.SweepRetention",
  "otto.v1.ProjectService.ApproveFork",
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
// SubmitRun or RunProject that names its request_id (one request id starts
// one run). Pass the request to know of the last; without it, only the
// method counts.
export function mayRepeat(method: DescMethod, request?: unknown): boolean {
  if (method.idempotency !== MethodOptions_IdempotencyLevel.IDEMPOTENCY_UNKNOWN) return true;
  const name = `${method.parent.typeName}.${method.name}`;
  if (fencedMethods.has(name)) return true;
  const requestId = (request as { requestId?: unknown } | undefined)?.requestId;
  return requestKeyed.has(name) && typeof requestId === "string" && requestId !== "";
}

const requestKeyed = new Set(["otto.v1.RunService.SubmitRun", "otto.v1.ProjectService.RunProject"]);
