// `npm start`: Otto on this machine until Ctrl-C.
import { argsOrExit } from "./args.ts";
import { storageFromEnv } from "./storage-env.ts";
import { retentionEnv, startSystem, type OttoSystem } from "./system.ts";
import { StopSignals, exitAfterFailedStart } from "./stop-signals.ts";

const args = argsOrExit("npm start -- [FLAGS]", process.argv.slice(2), process.env);
try {
  retentionEnv(process.env);
} catch (err) {
  process.stderr.write(`otto launcher: ${(err as Error).message}\n`);
  process.exit(2);
}
const signals = new StopSignals((text) => process.stdout.write(`launcher: ${text}\n`));
let system: OttoSystem;
try {
  system = await startSystem({
    dataDir: args.dataDir,
    coordinators: args.coordinators,
    agents: args.agents,
    gatewayPort: args.port,
    publicUrl: args.publicUrl,
    gatewayListen: args.listen,
    logMode: args.logMode,
    insecure: args.insecure,
    ...storageFromEnv(process.env),
    signal: signals.signal,
  });
} catch (err) {
  exitAfterFailedStart(err);
}
signals.up(system);
system.supervisor.log(`Otto is up: gateway ${system.gatewayUrl} (processes in ${system.processesFile}); Ctrl-C stops it`);
process.stdout.write(`\nOtto gateway: ${system.gatewayUrl}\n`);
if (system.adminTokenFile && system.caFile) {
  process.stdout.write(
    `Admin token: ${system.adminTokenFile} (keep it secret). Call Otto with it, e.g.:\n` +
      `  curl --cacert ${system.caFile} -H "Authorization: Bearer $(cat ${system.adminTokenFile})" \\\n` +
      `    -H 'Content-Type: application/json' -d '{}' ${system.gatewayUrl}/otto.v1.RunService/ListRuns\n` +
      "  npm run otto -- runs        (the CLI finds .otto/admin.token and .otto/tls/ca.pem itself)\n",
  );
}
process.stdout.write("\n");

