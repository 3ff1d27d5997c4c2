// The launcher's command line; each flag also from the environment. Anything
// it does not know is refused with the usage, before anything starts.
export interface LauncherArgs {
  coordinators: number;
  agents: number;
  port: number;
  // The gateway's URL as agents, tools and people reach it, and the address
  // it binds when that is not the URL's host (e.g. 0.0.0.0).
  publicUrl: string | undefined;
  listen: string | undefined;
  logMode: "pretty" | "raw" | "quiet";
  dataDir: string;
  insecure: boolean;
  // Positional arguments, for a command that takes them (the demo's file).
  rest: string[];
}

export const launcherUsage = `  --coordinators N     coordinators to run (OTTO_COORDINATORS, default 1)
  --agents N           agents to run on this machine (OTTO_AGENTS, default 1)
  --port N             the gateway's port (OTTO_GATEWAY_PORT, default 7670)
  --public-url URL     the gateway's public URL, e.g. https://ci.example.com:7670:
                       it serves on that host and port, its certificate names
                       the host, and Otto prints this URL (OTTO_PUBLIC_URL)
  --listen ADDR        the address the gateway binds instead of the public
                       URL's host, e.g. 0.0.0.0 (OTTO_GATEWAY_LISTEN)
  --data-dir DIR       where Otto keeps its state (OTTO_DATA_DIR, default .otto)
  --raw-logs | --quiet the processes' logs as JSON lines, or none
  --insecure           plain HTTP and no authentication (OTTO_INSECURE=1)
  --help               this text`;

export class UsageError extends Error {}

export function parseArgs(argv: string[], env: Record<string, string | undefined>, options: { positional?: number } = {}): LauncherArgs {
  const args: LauncherArgs = {
    coordinators: positive(env.OTTO_COORDINATORS ?? "1", "OTTO_COORDINATORS"),
    agents: positive(env.OTTO_AGENTS ?? "1", "OTTO_AGENTS"),
    port: positive(env.OTTO_GATEWAY_PORT ?? "7670", "OTTO_GATEWAY_PORT", 0),
    publicUrl: env.OTTO_PUBLIC_URL || undefined,
    listen: env.OTTO_GATEWAY_LISTEN || undefined,
    logMode: env.OTTO_RAW_LOGS === "1" ? "raw" : "pretty",
    dataDir: env.OTTO_DATA_DIR ?? ".otto",
    insecure: env.OTTO_INSECURE === "1" || env.OTTO_INSECURE === "true",
    rest: [],
  };
  let portGiven = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${arg} needs a value`);
      return v;
    };
    if (arg === "--coordinators") args.coordinators = positive(value(), arg);
    else if (arg === "--agents") args.agents = positive(value(), arg);
    else if (arg === "--port") (args.port = positive(value(), arg, 0)), (portGiven = true);
    else if (arg === "--public-url") args.publicUrl = value();
    else if (arg === "--listen") args.listen = value();
    else if (arg === "--data-dir") args.dataDir = value();
    else if (arg === "--raw-logs") args.logMode = "raw";
    else if (arg === "--quiet") args.logMode = "quiet";
    else if (arg === "--insecure") args.insecure = true;
    else if (arg.startsWith("-")) throw new UsageError(`unknown flag ${arg}`);
    else if (args.rest.length < (options.positional ?? 0)) args.rest.push(arg);
    else throw new UsageError(`unexpected argument "${arg}"`);
  }
  if (args.publicUrl) {
    const port = publicPort(args.publicUrl, args.insecure);
    if (portGiven && args.port !== port) throw new UsageError(`--port ${args.port} and --public-url ${args.publicUrl} name different ports`);
    args.port = port;
  }
  return args;
}

// The port of a public URL, after checking that it is one.
export function publicPort(url: string, insecure: boolean): number {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`--public-url "${url}" is not a URL (e.g. https://ci.example.com:7670)`);
  }
  const scheme = insecure ? "http:" : "https:";
  if (parsed.protocol !== scheme) throw new UsageError(`--public-url "${url}" must start with ${scheme}// ${insecure ? "(--insecure serves plain HTTP)" : "(Otto serves TLS)"}`);
  if (parsed.pathname !== "/" || parsed.search || parsed.hash || parsed.username) throw new UsageError(`--public-url "${url}" must be a scheme, a host and a port, with no path`);
  return parsed.port ? Number(parsed.port) : insecure ? 80 : 443;
}

function positive(raw: string, name: string, min = 1): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

// The arguments, or the process ends: with the usage on --help (code 0), or
// with what is wrong and the usage (code 2).
export function argsOrExit(command: string, argv: string[], env: Record<string, string | undefined>, options: { positional?: number } = {}): LauncherArgs {
  const usage = `usage: ${command}\n${launcherUsage}\n`;
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(usage);
    process.exit(0);
  }
  try {
    return parseArgs(argv, env, options);
  } catch (err) {
    process.stderr.write(`otto launcher: ${(err as Error).message}\n${err instanceof UsageError ? usage : ""}`);
    process.exit(2);
  }
}
