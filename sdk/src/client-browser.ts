import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ottoClientsOver, withToken, withTraceContext, type OttoClient } from "./clients.ts";

export type { OttoClient } from "./clients.ts";

export interface BrowserClientOptions {
  // The gateway; by default the page's own origin (Otto serves its pages).
  baseUrl?: string;
  // An API token, sent as the bearer header (never a cookie).
  token?: string;
  // Default deadline of unary calls; streams have none.
  timeoutMs?: number;
  transport?: Transport;
}

// Typed clients for Otto's public services from a browser, over fetch.
export function createOttoClient(options: BrowserClientOptions = {}): OttoClient {
  return ottoClientsOver(
    options.transport ??
      createConnectTransport({
        baseUrl: options.baseUrl ?? globalThis.location.origin,
        defaultTimeoutMs: options.timeoutMs ?? 30_000,
        interceptors: [withToken(options.token), withTraceContext],
      }),
  );
}
