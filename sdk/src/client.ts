import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { LogService } from "../../gen/otto/v1/log_service_pb.ts";
import { RunService } from "../../gen/otto/v1/run_service_pb.ts";

export const defaultGatewayUrl = "http://127.0.0.1:7670";

export interface OttoClientOptions {
  // The gateway, e.g. http://127.0.0.1:7670.
  baseUrl?: string;
  // Default deadline of unary calls; streams have none.
  timeoutMs?: number;
  transport?: Transport;
}

export interface OttoClient {
  runs: Client<typeof RunService>;
  logs: Client<typeof LogService>;
  transport: Transport;
}

// Typed clients for Otto's public services over one transport.
export function createOttoClient(options: OttoClientOptions = {}): OttoClient {
  const transport =
    options.transport ??
    createConnectTransport({
      baseUrl: options.baseUrl ?? process.env.OTTO_URL ?? defaultGatewayUrl,
      httpVersion: "1.1",
      defaultTimeoutMs: options.timeoutMs ?? 30_000,
    });
  return { runs: createClient(RunService, transport), logs: createClient(LogService, transport), transport };
}
