import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";

const transports = new Map<string, Transport>();

// Between Otto processes calls go as binary protobuf (cheaper to encode and
// decode than JSON); people and tools may use either.
export function transportFor(baseUrl: string, interceptors: Interceptor[] = []): Transport {
  let transport = transports.get(baseUrl);
  if (!transport) {
    transport = createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true, interceptors, defaultTimeoutMs: 30_000 });
    transports.set(baseUrl, transport);
  }
  return transport;
}

export function clientFor<S extends DescService>(service: S, baseUrl: string): Client<S> {
  return createClient(service, transportFor(baseUrl));
}
