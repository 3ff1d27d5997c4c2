import { create } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import { JoinAgentRequestSchema } from "@otto/gen/v1/registry_service_pb";

// An agent's id has one spelling: lowercase letters and digits in runs
// joined by single hyphens, at most 63 characters. The rule itself is the
// protovalidate rule on JoinAgentRequest.agent_id (where ids are born); this
// module applies that same rule where no request carries the id (the
// agent's own configuration, the token store).

const validator = createValidator();
const rule = "lowercase letters and digits in runs joined by single hyphens, at most 63 characters";
export const agentIdMaxLength = 63;

export function agentIdProblem(id: string): string | undefined {
  const result = validator.validate(JoinAgentRequestSchema, create(JoinAgentRequestSchema, { joinToken: "-", agentId: id }));
  if (result.kind === "error") throw result.error;
  if (result.kind === "valid" || !result.violations.some((v) => pathToString(v.field) === "agent_id")) return undefined;
  return `agent id "${id.slice(0, 80)}" must be ${rule}`;
}

// An id made from a host name and a suffix: "Build.Example.COM" and "a1b2c3"
// give "build-example-com-a1b2c3".
export function agentIdFromHost(hostname: string, suffix: string): string {
  const room = agentIdMaxLength - suffix.length - 1;
  const base = hostname.toLowerCase().replace(/[^a-z0-9]+/g, "-").slice(0, room).replace(/^-+|-+$/g, "");
  return `${base || "agent"}-${suffix}`;
}
