import { startTelemetry } from "@otto/kit/telemetry";
import { loadConfig, readInt, readString } from "@otto/kit/config";
import { createPool, migrate } from "@otto/kit/db";
import { Notifier } from "@otto/kit/notifier";
import { readCommonConfig, serveAndRegister, serviceLogger } from "@otto/kit/service";
import { onShutdown } from "@otto/kit/shutdown";
import { archiveChannel, logChannel, LogStore } from "./log-store.ts";
import { LogReader } from "./log-reader.ts";
import { LogArchiver } from "./log-archiver.ts";
import { migrations } from "./migrations.ts";
import { ObjectStore, readS3Config } from "./object-store.ts";
import { objectsRoutes } from "./routes.ts";
import { TaskTokenVerifier } from "@otto/kit/task-token";
import { migrateAuth } from "@otto/kit/token-store";
import { LogService } from "@otto/gen/v1/log_service_pb";
import { LogStoreService } from "@otto/gen/v1/log_store_service_pb";
import { ArtifactService, ArtifactStoreService } from "@otto/gen/v1/artifact_service_pb";
import { ArtifactStore } from "./artifact-store.ts";
import { artifactRoutes } from "./artifact-routes.ts";
import { RetentionStoreService } from "@otto/gen/v1/retention_service_pb";
import { retentionRoutes } from "./retention-routes.ts";

// First, so that everything after it is traced.
await startTelemetry("objects");

const config = loadConfig("objects", (env) => ({
  ...readCommonConfig(env),
  databaseUrl: readString(env, "DATABASE_URL"),
  s3: readS3Config(env),
  // Logs up to this size stay in Postgres when they close; 0 sends all to S3.
  logInlineMaxBytes: readInt(env, "OTTO_LOG_INLINE_MAX_BYTES", 16 * 1024, 0),
}));
const log = serviceLogger("objects");

const pool = createPool(config.databaseUrl, { application: "otto-objects", max: 10 });
onShutdown("close pool", () => pool.end());
await migrate(pool, "objects", migrations);
// Task tokens write only for attempts that are live in auth.live_attempts.
await migrateAuth(pool);
const objects = new ObjectStore(config.s3);
await objects.ensureBucket();
const notifier = new Notifier(config.databaseUrl, [logChannel, archiveChannel], log);
await notifier.start();
onShutdown("close listener", () => notifier.close());
const archiver = new LogArchiver(pool, objects, notifier, log);
archiver.start();
onShutdown("stop the log archiver", () => archiver.stop());
const logs = new LogStore(pool, config.logInlineMaxBytes);
const closer = setInterval(() => {
  logs.closeAbandoned().then(
    (closed) => closed > 0 && log.info("closed logs whose attempt ended without closing them", { closed }),
    (err) => log.warn("could not close abandoned logs", { err }),
  );
}, 10_000);
onShutdown("stop closing abandoned logs", () => clearInterval(closer));

await serveAndRegister({
  service: "objects",
  log,
  config,
  // Agents write a log only with the token of the task it belongs to.
  access: {
    [LogStoreService.typeName]: { "*": { tasks: true } },
    [LogService.typeName]: { "*": { services: ["gateway"] } },
    [ArtifactStoreService.typeName]: { "*": { tasks: true } },
    [ArtifactService.typeName]: { "*": { services: ["gateway"] } },
    // The retention sweep runs on coordinators.
    [RetentionStoreService.typeName]: { "*": { services: ["coordinator"] } },
  },
  credentials: config.security.insecure ? undefined : new TaskTokenVerifier(config.security.tls.ca),
  routes: (router) => {
    objectsRoutes(logs, new LogReader(pool, objects, notifier))(router);
    artifactRoutes(new ArtifactStore(pool, objects))(router);
    retentionRoutes(pool, objects)(router);
  },
});
