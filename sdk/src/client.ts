import { readFileSync } from "node:fs";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { context, propagation } from "@opentelemetry/api";
import { AdminService } from "../../gen/otto/v1/admin_service_pb.ts";
import { ArtifactService } from "../../gen/otto/v1/artifact_service_pb.ts";
import { LogService } from "../../gen/otto/v1/log_service_pb.ts";
import { RunService } from "../../gen/otto/v1/run_service_pb.ts";

export const defaultGatewayUrl = "https://127.0.0.1:7670";

export interface OttoClientOptions {
  // The gateway, e.g. https://127.0.0.1:7670 (else OTTO_URL).
  baseUrl?: string;
  // An API token (else OTTO_TOKEN, else the file OTTO_TOKEN_FILE).
  token?: string;
  // The CA that signed the gateway's certificate, when it is not one the
  // system trusts: PEM text or a file name (else the file OTTO_CA_FILE).
  ca?: string | Buffer;
  caFile?: string;
  // Default deadline of unary calls; streams have none.
  timeoutMs?: number;
  transport?: Transport;
}

export interface OttoClient {
  runs: Client<typeof RunService>;
  logs: Client<typeof LogService>;
  admin: Client<typeof AdminService>;
  artifacts: Client<typeof ArtifactService>;
  transport: Transport;
}

// Typed clients for Otto's public services over one transport.
export function createOttoClient(options: OttoClientOptions = {}): OttoClient {
  const transport = options.transport ?? createOttoTransport(options);
  return {
    runs: createClient(RunService, transport),
    logs: createClient(LogService, transport),
    admin: createClient(AdminService, transport),
    artifacts: createClient(ArtifactService, transport),
    transport,
  };
}

function createOttoTransport(options: OttoClientOptions): Transport {
  const baseUrl = options.baseUrl ?? process.env.OTTO_URL ?? defaultGatewayUrl;
  const token = options.token ?? (process.env.OTTO_TOKEN || readTrimmed(process.env.OTTO_TOKEN_FILE));
  const caFile = options.caFile ?? process.env.OTTO_CA_FILE;
  const ca = options.ca ?? (caFile ? readFileSync(caFile) : undefined);
  const withToken: Interceptor = (next) => (req) => {
    if (token && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    defaultTimeoutMs: options.timeoutMs ?? 30_000,
    interceptors: [withToken, withTraceContext],
    nodeOptions: ca && baseUrl.startsWith("https:") ? { ca } : undefined,
  });
}

// A caller that uses OpenTelemetry gets Otto's spans in its own trace: the
// active context goes along as `traceparent` (nothing happens without a
// registered propagator; a traceparent header given by hand wins).
const withTraceContext: Interceptor = (next) => (req) => {
  if (!req.header.has("traceparent")) propagation.inject(context.active(), req.header, { set: (header, key, value) => header.set(key, value) });
  return next(req);
};

function readTrimmed(file: string | undefined): string | undefined {
  return file ? readFileSync(file, "utf8").trim() : undefined;
}
