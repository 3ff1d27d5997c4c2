import { ParserService } from "@otto/gen/v1/parser_service_pb";
import { startTelemetry } from "@otto/kit/telemetry";
import { loadConfig } from "@otto/kit/config";
import { readCommonConfig, serveAndRegister, serviceLogger } from "@otto/kit/service";
import { parserRoutes } from "./routes.ts";

// First, so that everything after it is traced.
await startTelemetry("parser");

const config = loadConfig("parser", (env) => readCommonConfig(env));
const log = serviceLogger("parser");
await serveAndRegister({
  service: "parser",
  log,
  config,
  access: { [ParserService.typeName]: { "*": { services: ["gateway", "coordinator"] } } },
  routes: parserRoutes,
});
