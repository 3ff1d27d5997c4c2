import type { Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { retryUnavailable } from "./retry-unavailable.ts";
import { defaultRetryForMs, ottoClientsOver, withToken, withTraceContext, type OttoClient } from "./clients.ts";

export type { OttoClient } from "./clients.ts";

export interface BrowserClientOptions {
  // The gateway; by default the page's own origin (Otto serves its pages).
  baseUrl?: string;
  // An API token, sent as the bearer header (never a cookie).
  token?: string;
  // Default deadline of unary calls; streams have none.
  timeoutMs?: number;
  // How long a call that may be made again is retried while Otto answers
  // unavailable (retry-unavailable.ts); 0: never. Default 10 s.
  retryForMs?: number;
  transport?: Transport;
}

// Typed clients for Otto's public services from a browser, over fetch.
export function createOttoClient(options: BrowserClientOptions = {}): OttoClient {
  return ottoClientsOver(
    options.transport ??
      createConnectTransport({
        baseUrl: options.baseUrl ?? globalThis.location.origin,
        defaultTimeoutMs: options.timeoutMs ?? 30_000,
        interceptors: [withToken(options.token), withTraceContext, retryUnavailable(options.retryForMs ?? defaultRetryForMs)],
      }),
  );
}
