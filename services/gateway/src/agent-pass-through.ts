import type { DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { AgentService } from "@otto/gen/v1/agent_service_pb";
import { ArtifactStoreService } from "@otto/gen/v1/artifact_service_pb";
import { LogStoreService } from "@otto/gen/v1/log_store_service_pb";
import { RegistryService } from "@otto/gen/v1/registry_service_pb";
import type { Access, AccessRules } from "@otto/kit/authorize";
import type { ServiceCaller } from "@otto/kit/service-caller";
import { mayRepeat } from "@otto/contracts/repeatable-methods";

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

export const agentAccess: AccessRules = Object.fromEntries(passedOn.map(({ descriptor, access }) => [descriptor.typeName, access]));

type Forward = (request: unknown, options: object) => Promise<unknown>;

export function agentPassThrough(peers: ServiceCaller): (router: ConnectRouter) => void {
  return (router) => {
    for (const { descriptor, to, access } of passedOn) {
      const methods: Record<string, (request: unknown, context: HandlerContext) => Promise<unknown>> = {};
      for (const method of descriptor.methods) {
        if (!("*" in access) && !(method.name in access)) continue;
        // A call that may be made twice (the rest, AcquireTask and JoinAgent,
        // are passed on once) that an instance does not answer in time goes
        // on to another within the caller's deadline, as if the agent had
        // called the instances itself.
        const idempotent = mayRepeat(method);
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
