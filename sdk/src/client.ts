import { readFileSync } from "node:fs";
import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { retryUnavailable } from "./retry-unavailable.ts";
import { defaultGatewayUrl, defaultRetryForMs, ottoClientsOver, withToken, withTraceContext, type OttoClient } from "./clients.ts";

export { defaultGatewayUrl, type OttoClient } from "./clients.ts";

export interface OttoClientOptions {
  // The gateway, e.g. https://127.0.0.1:7670 (else OTTO_URL).
  baseUrl?: string;
  // An API token (else OTTO_TOKEN, else the file OTTO_TOKEN_FILE).
  token?: string;
  // The CA that signed the gateway's certificate, when it is not one the
  // system trusts: PEM text or a file name (else the file OTTO_CA_FILE).
  ca?: string | Uint8Array;
  caFile?: string;
  // Default deadline of unary calls; streams have none.
  timeoutMs?: number;
  // How long a call that may be made again is retried while Otto answers
  // unavailable (retry-unavailable.ts); 0: never. Default 10 s.
  retryForMs?: number;
  transport?: Transport;
}

// Typed clients for Otto's public services over one transport (in Node;
// client-browser.ts is the browser's).
export function createOttoClient(options: OttoClientOptions = {}): OttoClient {
  return ottoClientsOver(options.transport ?? createOttoTransport(options));
}

function createOttoTransport(options: OttoClientOptions): Transport {
  const baseUrl = options.baseUrl ?? process.env.OTTO_URL ?? defaultGatewayUrl;
  const token = options.token ?? (process.env.OTTO_TOKEN || readTrimmed(process.env.OTTO_TOKEN_FILE));
  const caFile = options.caFile ?? process.env.OTTO_CA_FILE;
  const ca = options.ca ?? (caFile ? readFileSync(caFile) : undefined);
  return createConnectTransport({
    baseUrl,
    httpVersion: "1.1",
    defaultTimeoutMs: options.timeoutMs ?? 30_000,
    interceptors: [withToken(token), withTraceContext, retryUnavailable(options.retryForMs ?? defaultRetryForMs)],
    nodeOptions: ca && baseUrl.startsWith("https:") ? { ca: typeof ca === "string" ? ca : Buffer.from(ca) } : undefined,
  });
}

function readTrimmed(file: string | undefined): string | undefined {
  return file ? readFileSync(file, "utf8").trim() : undefined;
}
