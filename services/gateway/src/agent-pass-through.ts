import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { AgentService } from "@otto/gen/v1/agent_service_pb";
import { ArtifactStoreService } from "@otto/gen/v1/artifact_service_pb";
import { LogStoreService } from "@otto/gen/v1/log_store_service_pb";
import { RegistryService } from "@otto/gen/v1/registry_service_pb";
import type { Access, AccessRules } from "@otto/kit/authorize";
import type { ServiceCaller } from "@otto/kit/service-caller";

// What an agent calls, served at the public endpoint so that an agent needs
// nothing else: each call is passed on as it came (with the agent's
// credential or task token) to the internal service that answers it, which
// checks it again as it always does. Who may call each method here is who
// may call it there.
const passedOn: Array<{ descriptor: DescService; to: string; access: Record<string, Access> }> = [
  { descriptor: AgentService, to: "coordinator", access: { "*": { agents: true } } },
  { descriptor: LogStoreService, to: "objects", access: { "*": { tasks: true } } },
  { descriptor: ArtifactStoreService, to: "objects", access: { "*": { tasks: true } } },
  {
    descriptor: RegistryService,
    to: "registry",
    // An agent joins, and keeps its own entry (for Otto's count of agents
    // and slots); it never learns where Otto's processes are (Resolve).
    access: { JoinAgent: { anyone: true }, Register: { agents: true }, Renew: { agents: true }, Deregister: { agents: true } },
  },
];

// Calls that may be made twice without harm (fenced by attempt or by
// sequence number): one that an instance does not answer in time goes on to
// another within the caller's deadline, as if the agent had called the
// instances itself. The rest (AcquireTask, JoinAgent) are passed on once.
const repeatable = new Set([
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

export const agentAccess: AccessRules = Object.fromEntries(passedOn.map(({ descriptor, access }) => [descriptor.typeName, access]));

type Forward = (request: unknown, options: object) => Promise<unknown>;

export function agentPassThrough(peers: ServiceCaller): (router: ConnectRouter) => void {
  return (router) => {
    for (const { descriptor, to, access } of passedOn) {
      const methods: Record<string, (request: unknown, context: HandlerContext) => Promise<unknown>> = {};
      for (const method of descriptor.methods) {
        if (!("*" in access) && !(method.name in access)) continue;
        const idempotent = repeatable.has(`${descriptor.typeName}.${method.name}`);
        methods[method.localName] = (request, context) => {
          const deadline = Date.now() + (context.timeoutMs() ?? defaultTimeoutMs);
          return peers.call(
            to,
            descriptor,
            (client) => (client as unknown as Record<string, Forward>)[method.localName](request, asItCame(context, deadline, idempotent)),
            { idempotent },
          );
        };
      }
      router.service(descriptor, methods as never);
    }
  };
}

const defaultTimeoutMs = 30_000;

// The call's options upstream: the agent's token, and its deadline; a
// repeatable call gives each try half of what is left, so that another
// instance still has time after one that does not answer.
function asItCame(context: HandlerContext, deadline: number, idempotent: boolean) {
  const authorization = context.requestHeader.get("authorization");
  const left = Math.max(1, deadline - Date.now());
  return { headers: authorization ? { authorization } : {}, signal: context.signal, timeoutMs: idempotent ? Math.max(250, Math.floor(left / 2)) : left };
}
