import { startTelemetry } from "../../kit/src/telemetry.ts";
import { loadConfig, readInt, readString } from "../../kit/src/config.ts";
import { createPool, migrate } from "../../kit/src/db.ts";
import { startServer } from "../../kit/src/server.ts";
import { installSignalHandlers, onShutdown } from "../../kit/src/shutdown.ts";
import { readBodyLimits, serviceLogger } from "../../kit/src/service.ts";
import { readTransportSecurity } from "../../kit/src/transport-security.ts";
import { authChannel, TokenStore } from "../../kit/src/token-store.ts";
import { Notifier } from "../../kit/src/notifier.ts";
import { RegistryService } from "../../../gen/otto/v1/registry_service_pb.ts";
import { ottoServices } from "../../kit/src/caller.ts";
import { migrations } from "./migrations.ts";
import { registryRoutes } from "./routes.ts";

// First, so that everything after it is traced.
await startTelemetry("registry");

const config = loadConfig("registry", (env) => ({
  host: readString(env, "OTTO_HOST", "127.0.0.1"),
  port: readInt(env, "OTTO_PORT", 7671),
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
