import { AdminService } from "@otto/gen/v1/admin_service_pb";
import { LogService } from "@otto/gen/v1/log_service_pb";
import { RunService } from "@otto/gen/v1/run_service_pb";
import { startTelemetry } from "@otto/kit/telemetry";
import { loadConfig, readInt, readString } from "@otto/kit/config";
import { createPool } from "@otto/kit/db";
import { readCommonConfig, serveAndRegister, serviceLogger } from "@otto/kit/service";
import { onShutdown } from "@otto/kit/shutdown";
import { authChannel, TokenStore } from "@otto/kit/token-store";
import { Notifier } from "@otto/kit/notifier";
import { adminServiceImpl } from "./admin-routes.ts";
import { artifactServiceImpl, artifactUrl } from "./artifact-routes.ts";
import { artifactDownloads } from "./artifact-downloads.ts";
import { ArtifactService } from "@otto/gen/v1/artifact_service_pb";
import { logServiceImpl } from "./log-routes.ts";
import { runServiceImpl } from "./run-routes.ts";
import { ParseCache } from "./parse-cache.ts";
import { agentAccess, agentPassThrough } from "./agent-pass-through.ts";
import { TaskTokenVerifier } from "@otto/kit/task-token";
import { StepTokenVerifier } from "@otto/kit/step-token";
import { everyCredential } from "@otto/kit/every-credential";
import { ProjectService } from "@otto/gen/v1/project_service_pb";
import { projectServiceImpl } from "./project-routes.ts";
import { forgeHooks } from "./forge-hooks.ts";
import { AccountService } from "@otto/gen/v1/account_service_pb";
import { accountServiceImpl } from "./account-routes.ts";
import { statusFeeds } from "./status-feeds.ts";
import { webUiRoutes } from "./web-ui.ts";

// First, so that everything after it is traced.
await startTelemetry("gateway");

const config = loadConfig("gateway", (env) => ({
  ...readCommonConfig(env, 7670),
  // Only for the tokens (auth schema): runs and logs are the coordinator's
  // and the objects service's.
  databaseUrl: readString(env, "DATABASE_URL"),
  // Pipeline texts whose IR is kept (see parse-cache.ts); 0 parses every submit.
  parseCacheEntries: readInt(env, "OTTO_GATEWAY_PARSE_CACHE_ENTRIES", 256),
  // Where people reach Otto (run pages in cctray.xml); else the address a request came to.
  publicUrl: readString(env, "OTTO_PUBLIC_URL", ""),
  // Artifact downloads (artifact-downloads.ts): storage that sends nothing this long fails one.
  storageIdleTimeoutMs: readInt(env, "OTTO_S3_IDLE_TIMEOUT_MS", 30_000, 100),
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
  // Browsers follow several streams per tab (web/): over HTTP/1.1 they
  // would soon hold all 6 connections a browser opens to one server.
  http2: true,
  access: {
    [RunService.typeName]: {
      SubmitRun: { scope: "runs:write" },
      CancelRun: { scope: "runs:write" },
      RerunRun: { scope: "runs:write" },
      ApproveJob: { scope: "runs:write" },
      RejectJob: { scope: "runs:write" },
      // A build step's token, and nothing else: it adds jobs to its own run.
      AddJobs: { steps: true },
      GetRun: { scope: "runs:read" },
      ListRuns: { scope: "runs:read" },
      ListPipelines: { scope: "runs:read" },
      WatchRun: { scope: "runs:read" },
      WatchRuns: { scope: "runs:read" },
    },
    // Any API token, whatever its scopes.
    [AccountService.typeName]: { WhoAmI: { apiTokens: true } },
    [LogService.typeName]: { ReadLog: { scope: "runs:read" } },
    [ArtifactService.typeName]: { "*": { scope: "runs:read" } },
    [AdminService.typeName]: { "*": { scope: "admin" }, ListAgents: { scope: "agents:read" } },
    [ProjectService.typeName]: {
      "*": { scope: "admin" },
      GetProject: { scope: "runs:read" },
      ListProjects: { scope: "runs:read" },
      RunProject: { scope: "runs:write" },
      ListSchedules: { scope: "runs:read" },
    },
    ...agentAccess,
  },
  credentials: config.security.insecure
    ? tokens
    : everyCredential(tokens, new TaskTokenVerifier(config.security.tls.ca), new StepTokenVerifier(config.security.tls.ca)),
  routes: (router, registry) => {
    router.service(RunService, runServiceImpl(registry, new ParseCache({ maxEntries: config.parseCacheEntries }), config.security.insecure));
    router.service(LogService, logServiceImpl(registry));
    router.service(AdminService, adminServiceImpl(tokens, registry));
    router.service(AccountService, accountServiceImpl(tokens));
    router.service(ArtifactService, artifactServiceImpl(registry));
    router.service(ProjectService, projectServiceImpl(registry));
    agentPassThrough(registry)(router);
  },
  httpRoutes: (registry) => {
    const hooks = forgeHooks(registry, log);
    const feeds = statusFeeds(registry, tokens, log, { publicUrl: config.publicUrl, insecure: config.security.insecure });
    const artifacts = artifactDownloads({
      artifactUrl: (req, signal) => artifactUrl(registry, req, signal),
      credentials: tokens,
      log,
      insecure: config.security.insecure,
      storageIdleTimeoutMs: config.storageIdleTimeoutMs,
    });
    const webUi = webUiRoutes(log);
    return (req, res, invite) => hooks(req, res, invite) || feeds(req, res) || artifacts(req, res) || webUi(req, res);
  },
});
