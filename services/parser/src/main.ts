import { loadConfig } from "../../kit/src/config.ts";
import { readCommonConfig, serveAndRegister, serviceLogger } from "../../kit/src/service.ts";
import { parserRoutes } from "./routes.ts";

const config = loadConfig("parser", (env) => readCommonConfig(env));
const log = serviceLogger("parser");
await serveAndRegister({ service: "parser", log, config, routes: parserRoutes });
