import { startTelemetry } from "@otto/kit/telemetry";
import { loadConfig, readString } from "@otto/kit/config";
import { readListenAddress } from "@otto/kit/listen-address";
import { createPool, migrate } from "@otto/kit/db";
import { startServer } from "@otto/kit/server";
import { installSignalHandlers, onShutdown } from "@otto/kit/shutdown";
import { readBodyLimits, serviceLogger } from "@otto/kit/service";
import { readTransportSecurity } from "@otto/kit/transport-security";
import { authChannel, TokenStore } from "@otto/kit/token-store";
import { Notifier } from "@otto/kit/notifier";
import { RegistryService } from "@otto/gen/v1/registry_service_pb";
import { ottoServices } from "@otto/kit/caller";
import { migrations } from "./migrations.ts";
import { registryRoutes } from "./routes.ts";

// First, so that everything after it is traced.
await startTelemetry("registry");

const config = loadConfig("registry", (env) => ({
  ...readListenAddress(env, 7671),
  databaseUrl: readString(env, "DATABASE_URL"),
  security: readTransportSecurity(env),
  ...readBodyLimits(env),
}));
const log = serviceLogger("registry");
installSignalHandlers((msg, fields) => log.info(msg, fields as Record<string, unknown>));

const pool = createPool(config.databaseUrl, { application: "otto-registry", max: 5 });
onShutdown("close pool", () => pool.end());
await migrate(pool, "registry", migrations);
const notifier = new Notifier(config.databaseUrl, [authChannel], log);
await notifier.start();
onShutdown("close listener", () => notifier.close());
const tokens = new TokenStore(pool, notifier);
await tokens.start();
const server = await startServer({
  routes: registryRoutes(pool, tokens),
  host: config.host,
  port: config.port,
  log,
  security: config.security,
  access: {
    [RegistryService.typeName]: {
      "*": { services: ottoServices, agents: true },
      JoinAgent: { anyone: true },
    },
  },
  credentials: tokens,
  maxBodiesPerCaller: config.maxBodiesPerCaller,
  maxBodiesWaitingPerCaller: config.maxBodiesWaitingPerCaller,
});
onShutdown("close server", () => server.close());
server.setReady(true);
log.info("listening", { url: server.url });
