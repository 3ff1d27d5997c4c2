// `npm start`: Otto on this machine until Ctrl-C.
import { parseArgs } from "./args.ts";
import { storageFromEnv } from "./storage-env.ts";
import { startSystem, stopOnSignals } from "./system.ts";

let args;
try {
  args = parseArgs(process.argv.slice(2), process.env);
} catch (err) {
  process.stderr.write(`otto launcher: ${(err as Error).message}\n`);
  process.exit(2);
}
const system = await startSystem({
  dataDir: args.dataDir,
  coordinators: args.coordinators,
  agents: args.agents,
  gatewayPort: args.port,
  logMode: args.logMode,
  ...storageFromEnv(process.env),
});
system.supervisor.log(`Otto is up: gateway ${system.gatewayUrl} (processes in ${system.processesFile}); Ctrl-C stops it`);
process.stdout.write(`\nOtto gateway: ${system.gatewayUrl}\n\n`);

stopOnSignals(system);
