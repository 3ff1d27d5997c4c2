import type { LauncherArgs } from "./args.ts";
import { storageFromEnv } from "./storage-env.ts";
import { Interrupted, type StopSignals } from "./stop-signals.ts";
import { startSystem, type OttoSystem, type SystemOptions } from "./system.ts";

// Starts Otto as the command line and the environment say, stoppable by a
// signal at any moment (stop-signals.ts). A start that does not finish
// ends the process.
export async function startFromArgs(args: LauncherArgs, signals: StopSignals, options: Pick<SystemOptions, "logMode" | "logFile">): Promise<OttoSystem> {
  try {
    const system = await startSystem({
      dataDir: args.dataDir,
      coordinators: args.coordinators,
      agents: args.agents,
      gatewayPort: args.port,
      publicUrl: args.publicUrl,
      gatewayListen: args.listen,
      insecure: args.insecure,
      ...options,
      ...storageFromEnv(process.env),
      signal: signals.signal,
    });
    signals.up(system);
    return system;
  } catch (err) {
    exitAfterFailedStart(err);
  }
}

// Ends the process after a start that did not finish: interrupted (130), or
// failed (1), saying why in a line rather than with a stack.
export function exitAfterFailedStart(err: unknown): never {
  if (err instanceof Interrupted) {
    process.stderr.write(`otto launcher: ${err.message}\n`);
    process.exit(130);
  }
  process.stderr.write(`otto launcher: Otto could not start: ${(err as Error).message ?? String(err)}\n`);
  process.exit(1);
}
