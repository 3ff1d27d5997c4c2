import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { traceClientCalls } from "./tracing-interceptors.ts";

const transports = new Map<string, Transport>();

// Between Otto processes calls go as binary protobuf, each one traced.
export function transportFor(baseUrl: string, interceptors: Interceptor[] = []): Transport {
  let transport = transports.get(baseUrl);
  if (!transport) {
    transport = createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      useBinaryFormat: true,
      interceptors: [traceClientCalls, ...interceptors],
      defaultTimeoutMs: 30_000,
    });
    transports.set(baseUrl, transport);
  }
  return transport;
}

export function clientFor<S extends DescService>(service: S, baseUrl: string): Client<S> {
  return createClient(service, transportFor(baseUrl));
}
