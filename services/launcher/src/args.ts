// The launcher's command line: --coordinators N, --agents N, --port N,
// --raw-logs, --quiet, --insecure; each also from the environment.
export interface LauncherArgs {
  coordinators: number;
  agents: number;
  port: number;
  logMode: "pretty" | "raw" | "quiet";
  dataDir: string;
  insecure: boolean;
  rest: string[];
}

export function parseArgs(argv: string[], env: Record<string, string | undefined>): LauncherArgs {
  const args: LauncherArgs = {
    coordinators: positive(env.OTTO_COORDINATORS ?? "1", "OTTO_COORDINATORS"),
    agents: positive(env.OTTO_AGENTS ?? "1", "OTTO_AGENTS"),
    port: positive(env.OTTO_GATEWAY_PORT ?? "7670", "OTTO_GATEWAY_PORT", 0),
    logMode: env.OTTO_RAW_LOGS === "1" ? "raw" : "pretty",
    dataDir: env.OTTO_DATA_DIR ?? ".otto",
    insecure: env.OTTO_INSECURE === "1" || env.OTTO_INSECURE === "true",
    rest: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === "--coordinators") args.coordinators = positive(value(), arg);
    else if (arg === "--agents") args.agents = positive(value(), arg);
    else if (arg === "--port") args.port = positive(value(), arg, 0);
    else if (arg === "--data-dir") args.dataDir = value();
    else if (arg === "--raw-logs") args.logMode = "raw";
    else if (arg === "--quiet") args.logMode = "quiet";
    else if (arg === "--insecure") args.insecure = true;
    else args.rest.push(arg);
  }
  return args;
}

function positive(raw: string, name: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}
