import { randomUUID } from "node:crypto";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { RegistryService, type Instance } from "@otto/gen/v1/registry_service_pb";
import { clientFor } from "./clients.ts";
import type { Logger } from "./log.ts";
import type { CallOptions, ServiceCaller } from "./service-caller.ts";

export interface Registration {
  instanceId: string;
  stop(): Promise<void>;
}

export interface RegisterOptions {
  service: string;
  url: string;
  instanceId?: string;
  labels?: string[];
  slots?: number;
  leaseSeconds?: number;
}

// Talks to the registry: keeps this process's lease alive and finds peers.
export class RegistryClient implements ServiceCaller {
  readonly #client: Client<typeof RegistryService>;
  readonly #log: Logger;
  readonly #cache = new Map<string, { at: number; instances: Instance[] }>();
  readonly #url: string;

  constructor(registryUrl: string, log: Logger) {
    this.#url = registryUrl;
    this.#client = clientFor(RegistryService, registryUrl);
    this.#log = log;
  }

  async register(options: RegisterOptions): Promise<Registration> {
    const instanceId = options.instanceId ?? randomUUID();
    const leaseSeconds = options.leaseSeconds ?? 10;
    const request = { ...options, instanceId, leaseSeconds, labels: options.labels ?? [], slots: options.slots ?? 0 };
    await this.#client.register(request);
    let stopped = false;
    const renew = async () => {
      try {
        await this.#client.renew({ service: options.service, instanceId });
      } catch (err) {
        if (stopped) return;
        if (err instanceof ConnectError && err.code === Code.NotFound) {
          await this.#client.register(request).catch(() => {});
        } else {
          this.#log.warn("registry renewal failed", { err });
        }
      }
    };
    const timer = setInterval(renew, (leaseSeconds * 1000) / 3);
    timer.unref();
    return {
      instanceId,
      stop: async () => {
        stopped = true;
        clearInterval(timer);
        await this.#client.deregister({ service: options.service, instanceId }).catch(() => {});
      },
    };
  }

  // Instances of `service`, from a cache of up to 5 s: a caller that cannot
  // reach one moves on to the next and, failing all, asks again (fresh).
  async resolve(service: string, fresh = false): Promise<Instance[]> {
    const cached = this.#cache.get(service);
    if (!fresh && cached && Date.now() - cached.at < 5_000 && cached.instances.length > 0) return cached.instances;
    const { instances } = await this.#client.resolve({ service });
    this.#cache.set(service, { at: Date.now(), instances });
    return instances;
  }

  // Calls one live instance of `service`, moving on to the next one when an
  // instance cannot be reached, and for up to `retryForMs` in all (peers
  // restart). Only `idempotent` calls are repeated after a connection broke
  // mid-call or after the call's own deadline (its `timeoutMs`) passed,
  // since the first try may have taken effect.
  async call<S extends DescService, T>(
    service: string,
    descriptor: S,
    call: (client: Client<S>) => Promise<T>,
    options: CallOptions = {},
  ): Promise<T> {
    // The registry itself is where this client was pointed.
    if (service === "registry") return call(clientFor(descriptor, this.#url));
    const deadline = Date.now() + (options.retryForMs ?? 0);
    let lastError: unknown;
    for (let round = 0; round < 2 || Date.now() < deadline; round++) {
      if (round >= 2) await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * round)));
      const instances = await this.resolve(service, round > 0).catch((err) => {
        lastError = err;
        return [] as Instance[];
      });
      // Each instance once, from one at random: a counter shared by every
      // call made a periodic caller (a task's heartbeat) land on the same
      // instance each time, and a call's next try land on the one that had
      // just failed it, however many instances were up.
      const first = Math.floor(Math.random() * instances.length);
      for (let i = 0; i < instances.length; i++) {
        const instance = instances[(first + i) % instances.length];
        try {
          return await call(clientFor(descriptor, instance.url));
        } catch (err) {
          if (!mayTryAgain(err, options.idempotent === true)) throw err;
          lastError = err;
        }
      }
    }
    throw new ConnectError(
      `no reachable ${service} instance` + (lastError ? `: ${(lastError as Error).message}` : ""),
      Code.Unavailable,
    );
  }
}

// The connection to the peer broke while the call was under way.
export function isBrokenConnection(err: unknown): boolean {
  return (
    err instanceof ConnectError &&
    (err.code === Code.Aborted || err.code === Code.Internal) &&
    /ECONNRESET|socket hang up|EPIPE|other side closed|premature close/i.test(err.rawMessage)
  );
}

// The instance did not answer within the call's deadline (a stopped
// process takes calls and never answers them).
export function isTimedOut(err: unknown): boolean {
  return err instanceof ConnectError && err.code === Code.DeadlineExceeded;
}

// The call never reached the instance: nothing answers, or the connection
// was cut before TLS was set up (a process killed as it was being called),
// so no request was sent.
export function isUnreachable(err: unknown): boolean {
  return (
    err instanceof ConnectError &&
    (err.code === Code.Unavailable || ((err.code === Code.Aborted || err.code === Code.Internal) && /before secure TLS connection was established/i.test(err.rawMessage)))
  );
}

// Whether a call that failed so may be made again (elsewhere): always when
// it never arrived; when it may be made twice without harm, also when the
// connection broke under it or its deadline passed.
export function mayTryAgain(err: unknown, idempotent: boolean): boolean {
  return isUnreachable(err) || (idempotent && (isBrokenConnection(err) || isTimedOut(err)));
}
