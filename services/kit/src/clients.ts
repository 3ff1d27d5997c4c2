import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import http from "node:http";
import https from "node:https";
import type { DescService } from "@bufbuild/protobuf";
import { traceClientCalls } from "./tracing-interceptors.ts";
import { unaryHttpClient } from "./unary-http-client.ts";

const transports = new Map<string, Transport>();
let tlsOptions: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;
let credential: string | undefined;

// Set once at start, before the first call: the CA that servers' certificates
// must chain to (none: the system's), and the certificate to present (Otto's
// processes present theirs; agents, which run other people's code, have
// none and use tokens).
export function configureClients(tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }): void {
  tlsOptions = tls;
}

// The bearer token sent on every call that does not carry its own.
export function useCredential(token: string | undefined): void {
  credential = token;
}

const sendCredential: Interceptor = (next) => (req) => {
  if (credential && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${credential}`);
  return next(req);
};

// Between Otto processes calls go as binary protobuf, each one traced, and
// uncompressed: their messages are small, and gzip would spend CPU to save
// few bytes.
export function transportFor(baseUrl: string, interceptors: Interceptor[] = []): Transport {
  let transport = transports.get(baseUrl);
  if (!transport) {
    const tls = baseUrl.startsWith("https:") ? (tlsOptions ?? {}) : undefined;
    const agent = tls ? new https.Agent({ keepAlive: true, ...tls }) : new http.Agent({ keepAlive: true });
    transport = createTransport({
      baseUrl,
      httpClient: unaryHttpClient(agent),
      useBinaryFormat: true,
      acceptCompression: [],
      sendCompression: null,
      compressMinBytes: 1024,
      readMaxBytes: 0xffffffff,
      writeMaxBytes: 0xffffffff,
      interceptors: [traceClientCalls, sendCredential, ...interceptors],
      defaultTimeoutMs: 30_000,
    });
    transports.set(baseUrl, transport);
  }
  return transport;
}

export function clientFor<S extends DescService>(service: S, baseUrl: string): Client<S> {
  return createClient(service, transportFor(baseUrl));
}
