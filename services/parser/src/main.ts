import { ParserService } from "../../../gen/otto/v1/parser_service_pb.ts";
import { startTelemetry } from "../../kit/src/telemetry.ts";
import { loadConfig } from "../../kit/src/config.ts";
import { readCommonConfig, serveAndRegister, serviceLogger } from "../../kit/src/service.ts";
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
