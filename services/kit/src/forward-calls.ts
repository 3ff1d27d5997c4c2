import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { mayRepeat } from "@otto/contracts/repeatable-methods";
import type { ServiceCaller } from "./service-caller.ts";

// Passes calls of `descriptor`'s methods on to a live instance of `service`:
// a call that may be made again (contracts' repeatable-methods.ts) goes on to
// another instance, for up to `retryForMs`, when one does not answer; any
// other is passed on once.
export function forwardCalls<S extends DescService>(peers: ServiceCaller, service: string, descriptor: S, retryForMs = 5_000) {
  return <T>(method: keyof S["method"] & string, request: unknown, call: (client: Client<S>) => Promise<T>): Promise<T> =>
    peers.call(service, descriptor, call, mayRepeat(descriptor.method[method], request) ? { idempotent: true, retryForMs } : undefined);
}
