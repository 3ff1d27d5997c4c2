import type { ConnectRouter } from "@connectrpc/connect";
import { readInt, readString } from "./config.ts";
import { readListenAddress, type ListenAddress } from "./listen-address.ts";
import { createLogger, type Logger } from "./log.ts";
import { RegistryClient, type Registration } from "./registry-client.ts";
import { startServer, type RunningServer, type ServerOptions } from "./server.ts";
import { configureClients } from "./clients.ts";
import type { AccessRules, CredentialVerifier } from "./authorize.ts";
import { readTransportSecurity, type TransportSecurity } from "./transport-security.ts";
import { draining, installSignalHandlers, onShutdown, shutdownDeadlineMs } from "./shutdown.ts";

export interface CommonConfig extends ListenAddress {
  registryUrl: string;
  security: TransportSecurity;
  maxBodiesPerCaller: number;
  maxBodiesWaitingPerCaller: number;
}

export function readCommonConfig(env: Record<string, string | undefined>, defaultPort = 0): CommonConfig {
  return {
    ...readListenAddress(env, defaultPort),
    registryUrl: readString(env, "OTTO_REGISTRY_URL"),
    security: readTransportSecurity(env),
    ...readBodyLimits(env),
  };
}

// How many request bodies one caller may have in flight, and waiting for a
// place, in any server (see bodies-in-flight.ts).
export function readBodyLimits(env: Record<string, string | undefined>) {
  return {
    maxBodiesPerCaller: readInt(env, "OTTO_MAX_BODIES_PER_CALLER", 8, 1),
    maxBodiesWaitingPerCaller: readInt(env, "OTTO_MAX_BODIES_WAITING_PER_CALLER", 1000, 0),
  };
}

export interface Booted {
  log: Logger;
  server: RunningServer;
  registry: RegistryClient;
  registration: Registration;
}

// The tail end of every service's start: serve the routes, register with
// the registry under the address actually bound, announce, and arrange a
// graceful shutdown (deregister first so peers stop calling, then drain).
export async function serveAndRegister(options: {
  service: string;
  log: Logger;
  config: CommonConfig;
  routes: (router: ConnectRouter, registry: RegistryClient) => void;
  // Who may call which method (see authorize.ts), and how bearer tokens are checked.
  access: AccessRules;
  credentials?: CredentialVerifier;
  labels?: string[];
  slots?: number;
  instanceId?: string;
  // Added to OTTO_SHUTDOWN_TIMEOUT_MS for processes that drain longer work.
  extraShutdownMs?: number;
  maxBodyBytes?: number;
  httpRoutes?: (registry: RegistryClient) => ServerOptions["httpRoutes"];
  http2?: boolean;
}): Promise<Booted> {
  const { log, config } = options;
  installSignalHandlers((msg, fields) => log.info(msg, fields as Record<string, unknown>), shutdownDeadlineMs(options.extraShutdownMs));
  if (!config.security.insecure) configureClients(config.security.tls);
  const registry = new RegistryClient(config.registryUrl, log);
  const routes = (router: ConnectRouter) => options.routes(router, registry);
  const server = await startServer({
    routes,
    host: config.host,
    port: config.port,
    log,
    security: config.security,
    access: options.access,
    credentials: options.credentials,
    maxBodiesPerCaller: config.maxBodiesPerCaller,
    maxBodiesWaitingPerCaller: config.maxBodiesWaitingPerCaller,
    maxBodyBytes: options.maxBodyBytes,
    httpRoutes: options.httpRoutes?.(registry),
    http2: options.http2,
  });
  onShutdown("close server", () => server.close());
  const registration = await retry(() =>
    registry.register({
      service: options.service,
      url: config.advertiseUrl ?? server.url,
      labels: options.labels,
      slots: options.slots,
      instanceId: options.instanceId,
    }),
  );
  onShutdown("deregister", () => registration.stop());
  // The moment shutdown begins, /readyz answers 503 while the process drains.
  draining.addEventListener("abort", () => server.setReady(false));
  server.setReady(true);
  log.info("listening", { url: server.url, advertised: config.advertiseUrl, instance_id: registration.instanceId });
  return { log, server, registry, registration };
}

export function serviceLogger(service: string): Logger {
  const log = createLogger(service);
  process.on("unhandledRejection", (err) => log.error("unhandled rejection", { err }));
  return log;
}

export async function retry<T>(attempt: () => Promise<T>, tries = 50, delayMs = 200): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i >= tries) throw err;
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}
