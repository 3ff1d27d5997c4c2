import { AdminService } from "../../../gen/otto/v1/admin_service_pb.ts";
import { LogService } from "../../../gen/otto/v1/log_service_pb.ts";
import { RunService } from "../../../gen/otto/v1/run_service_pb.ts";
import { startTelemetry } from "../../kit/src/telemetry.ts";
import { loadConfig, readInt, readString } from "../../kit/src/config.ts";
import { createPool } from "../../kit/src/db.ts";
import { readCommonConfig, serveAndRegister, serviceLogger } from "../../kit/src/service.ts";
import { onShutdown } from "../../kit/src/shutdown.ts";
import { authChannel, TokenStore } from "../../kit/src/token-store.ts";
import { Notifier } from "../../kit/src/notifier.ts";
import { adminServiceImpl } from "./admin-routes.ts";
import { artifactServiceImpl } from "./artifact-routes.ts";
import { ArtifactService } from "../../../gen/otto/v1/artifact_service_pb.ts";
import { logServiceImpl } from "./log-routes.ts";
import { runServiceImpl } from "./run-routes.ts";
import { ParseCache } from "./parse-cache.ts";

// First, so that everything after it is traced.
await startTelemetry("gateway");

const config = loadConfig("gateway", (env) => ({
  ...readCommonConfig(env, 7670),
  // Only for the tokens (auth schema): runs and logs are the coordinator's
  // and the objects service's.
  databaseUrl: readString(env, "DATABASE_URL"),
  // Pipeline texts whose IR is kept (see parse-cache.ts); 0 parses every submit.
  parseCacheEntries: readInt(env, "OTTO_GATEWAY_PARSE_CACHE_ENTRIES", 256),
}));
const log = serviceLogger("gateway");

const pool = createPool(config.databaseUrl, { application: "otto-gateway", max: 4 });
onShutdown("close pool", () => pool.end());
const notifier = new Notifier(config.databaseUrl, [authChannel], log);
await notifier.start();
onShutdown("close listener", () => notifier.close());
const tokens = new TokenStore(pool, notifier);
await tokens.start();

await serveAndRegister({
  service: "gateway",
  log,
  config,
  access: {
    [RunService.typeName]: {
      SubmitRun: { scope: "runs:write" },
      CancelRun: { scope: "runs:write" },
      GetRun: { scope: "runs:read" },
      ListRuns: { scope: "runs:read" },
      WatchRun: { scope: "runs:read" },
    },
    [LogService.typeName]: { ReadLog: { scope: "runs:read" } },
    [ArtifactService.typeName]: { "*": { scope: "runs:read" } },
    [AdminService.typeName]: { "*": { scope: "admin" } },
  },
  credentials: tokens,
  routes: (router, registry) => {
    router.service(RunService, runServiceImpl(registry, new ParseCache({ maxEntries: config.parseCacheEntries })));
    router.service(LogService, logServiceImpl(registry));
    router.service(AdminService, adminServiceImpl(tokens, registry));
    router.service(ArtifactService, artifactServiceImpl(registry));
  },
});
