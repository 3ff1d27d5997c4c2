// `npm run demo`: start Otto, run examples/hello.otto.yml through the public
// API with its logs printed live, stop everything, exit 0 if it succeeded.
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { createOttoClient, describeRun, followRun, RunState, submit } from "@otto/sdk";
import { argsOrExit } from "./args.ts";
import { repoRoot } from "./system.ts";
import { StopSignals } from "./stop-signals.ts";
import { startFromArgs } from "./start-from-args.ts";

const args = argsOrExit("npm run demo -- [FLAGS] [PIPELINE_FILE]", process.argv.slice(2), { ...process.env, OTTO_GATEWAY_PORT: process.env.OTTO_GATEWAY_PORT ?? "0" }, { positional: 1 });
const file = args.rest[0] ?? join(repoRoot, "examples", "hello.otto.yml");
const say = (text: string) => process.stdout.write(text + "\n");

say("starting Otto (embedded Postgres and S3 unless DATABASE_URL / OTTO_S3_ENDPOINT are set)...");
const signals = new StopSignals(say, 130);
const system = await startFromArgs(args, signals, { logMode: "quiet", logFile: join(args.dataDir, "demo.log") });
let exitCode = 1;
try {
  say(`Otto is up: gateway ${system.gatewayUrl}`);
  const client = createOttoClient({ baseUrl: system.gatewayUrl, token: system.adminToken, caFile: system.caFile });
  const run = await submit(client, await readFile(file, "utf8"), basename(file));
  say(`submitted ${file} as run ${run.id}`);
  const final = await followRun(client, run.id, {
    log: (job, line) => say(`[${job}] ${line}`),
    event: (text) => say(`-- ${text}`),
  });
  say("");
  say(describeRun(final));
  exitCode = final.state === RunState.SUCCEEDED ? 0 : 1;
} catch (err) {
  say(`demo failed: ${(err as Error).message}`);
} finally {
  say("stopping Otto...");
  await system.stop();
}
process.exit(exitCode);
