import { LogService } from "../../../gen/otto/v1/log_service_pb.ts";
import { RunService } from "../../../gen/otto/v1/run_service_pb.ts";
import { startTelemetry } from "../../kit/src/telemetry.ts";
import { loadConfig } from "../../kit/src/config.ts";
import { readCommonConfig, serveAndRegister, serviceLogger } from "../../kit/src/service.ts";
import { logServiceImpl } from "./log-routes.ts";
import { runServiceImpl } from "./run-routes.ts";

// First, so that everything after it is traced.
await startTelemetry("gateway");

const config = loadConfig("gateway", (env) => readCommonConfig(env, 7670));
const log = serviceLogger("gateway");

await serveAndRegister({
  service: "gateway",
  log,
  config,
  routes: (router, registry) => {
    router.service(RunService, runServiceImpl(registry));
    router.service(LogService, logServiceImpl(registry));
  },
});
