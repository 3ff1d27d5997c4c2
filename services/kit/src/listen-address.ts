import { ConfigError, readInt, readString } from "./config.ts";

type Env = Record<string, string | undefined>;

export interface ListenAddress {
  host: string;
  port: number;
  // What this process registers as its URL, when it is not the address it
  // binds (another machine's view of it; a bind to every address has none).
  advertiseUrl: string | undefined;
}

// Where a process listens: OTTO_LISTEN (`HOST:PORT`, `[V6]:PORT` or `:PORT`
// for every address), else OTTO_HOST and OTTO_PORT; and the URL its peers
// reach it at, OTTO_ADVERTISE_URL, which its certificate must name. A
// process that binds every address must say how it is reached.
export function readListenAddress(env: Env, defaultPort: number): ListenAddress {
  let host = readString(env, "OTTO_HOST", "127.0.0.1");
  let port = readInt(env, "OTTO_PORT", defaultPort);
  const listen = env.OTTO_LISTEN;
  if (listen) {
    const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen);
    if (!match || Number(match[3]) > 65535) throw new ConfigError(`OTTO_LISTEN: "${listen}" is not HOST:PORT, [IPV6]:PORT or :PORT`);
    host = match[1] ?? (match[2] || "0.0.0.0");
    port = Number(match[3]);
  }
  const advertised = env.OTTO_ADVERTISE_URL || undefined;
  if (advertised) {
    let url: URL;
    try {
      url = new URL(advertised);
    } catch {
      throw new ConfigError(`OTTO_ADVERTISE_URL: "${advertised}" is not a URL (e.g. https://coordinator-0.otto.svc:7672)`);
    }
    if (!/^https?:$/.test(url.protocol) || url.pathname !== "/") throw new ConfigError(`OTTO_ADVERTISE_URL: "${advertised}" must be http(s)://HOST:PORT`);
  } else if (host === "0.0.0.0" || host === "::") {
    throw new ConfigError(`OTTO_LISTEN binds every address (${host}): set OTTO_ADVERTISE_URL to the URL other processes reach this one at`);
  }
  return { host, port, advertiseUrl: advertised?.replace(/\/+$/, "") };
}
