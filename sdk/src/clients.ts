import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { context, propagation } from "@opentelemetry/api";
import { AccountService } from "@otto/gen/v1/account_service_pb";
import { AdminService } from "@otto/gen/v1/admin_service_pb";
import { ArtifactService } from "@otto/gen/v1/artifact_service_pb";
import { LogService } from "@otto/gen/v1/log_service_pb";
import { ProjectService } from "@otto/gen/v1/project_service_pb";
import { RunService } from "@otto/gen/v1/run_service_pb";

export const defaultGatewayUrl = "https://127.0.0.1:7670";
export const defaultRetryForMs = 10_000;

export interface OttoClient {
  runs: Client<typeof RunService>;
  logs: Client<typeof LogService>;
  admin: Client<typeof AdminService>;
  account: Client<typeof AccountService>;
  artifacts: Client<typeof ArtifactService>;
  projects: Client<typeof ProjectService>;
  transport: Transport;
}

// Typed clients for Otto's public services over one transport (Node's or
// the browser's: client.ts, client-browser.ts).
export function ottoClientsOver(transport: Transport): OttoClient {
  return {
    runs: createClient(RunService, transport),
    logs: createClient(LogService, transport),
    admin: createClient(AdminService, transport),
    account: createClient(AccountService, transport),
    artifacts: createClient(ArtifactService, transport),
    projects: createClient(ProjectService, transport),
    transport,
  };
}

// Sends `token` as the bearer, unless the call has its own authorization.
export function withToken(token: string | undefined): Interceptor {
  return (next) => (req) => {
    if (token && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
}

// A caller that uses OpenTelemetry gets Otto's spans in its own trace: the
// active context goes along as `traceparent` (nothing happens without a
// registered propagator; a traceparent header given by hand wins).
export const withTraceContext: Interceptor = (next) => (req) => {
  if (!req.header.has("traceparent")) propagation.inject(context.active(), req.header, { set: (header, key, value) => header.set(key, value) });
  return next(req);
};
