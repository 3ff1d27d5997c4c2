import type { Client } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";

export interface CallOptions {
  // Whether the call may be repeated after a connection broke mid-call or
  // its deadline passed (the first try may have taken effect).
  idempotent?: boolean;
  // How long to keep trying while the service cannot be reached.
  retryForMs?: number;
}

// Calls one of Otto's services by name, however it is reached: Otto's own
// processes find a live instance through the registry (RegistryClient);
// agents go through the gateway's public URL (gateway-caller.ts).
export interface ServiceCaller {
  call<S extends DescService, T>(service: string, descriptor: S, call: (client: Client<S>) => Promise<T>, options?: CallOptions): Promise<T>;
}
