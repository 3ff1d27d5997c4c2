// `npm start`: Otto on this machine until Ctrl-C.
import { argsOrExit } from "./args.ts";
import { retentionEnv } from "./system.ts";
import { StopSignals } from "./stop-signals.ts";
import { startFromArgs } from "./start-from-args.ts";

const args = argsOrExit("npm start -- [FLAGS]", process.argv.slice(2), process.env);
try {
  retentionEnv(process.env);
} catch (err) {
  process.stderr.write(`otto launcher: ${(err as Error).message}\n`);
  process.exit(2);
}
const signals = new StopSignals((text) => process.stdout.write(`launcher: ${text}\n`));
const system = await startFromArgs(args, signals, { logMode: args.logMode });
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

