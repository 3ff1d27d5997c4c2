import type { Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { clientFor } from "@otto/kit/clients";
import { mayTryAgain } from "@otto/kit/registry-client";
import type { CallOptions, ServiceCaller } from "@otto/kit/service-caller";

// An agent reaches every service through the gateway's public URL, which
// passes each call on to a live instance of the service that answers it
// (the gateway's agent-pass-through.ts). While the gateway, or every
// instance behind it, cannot be reached, a call is tried again for up to
// `retryForMs`; an idempotent one also after its connection broke or its
// deadline passed.
export class GatewayCaller implements ServiceCaller {
  readonly #url: string;

  constructor(url: string) {
    this.#url = url;
  }

  async call<S extends DescService, T>(_service: string, descriptor: S, call: (client: Client<S>) => Promise<T>, options: CallOptions = {}): Promise<T> {
    const deadline = Date.now() + (options.retryForMs ?? 0);
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(clientFor(descriptor, this.#url));
      } catch (err) {
        if (!mayTryAgain(err, options.idempotent === true) || Date.now() >= deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 100 * attempt)));
      }
    }
  }
}
