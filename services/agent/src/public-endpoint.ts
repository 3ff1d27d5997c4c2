import { readFileSync } from "node:fs";
import { ConfigError, readString } from "@otto/kit/config";

// Where an agent finds Otto: the gateway's public URL (OTTO_URL), and the CA
// its certificate chains to (OTTO_CA_FILE) when the system does not trust
// it. An agent needs nothing else of Otto's.
export function readPublicEndpoint(env: Record<string, string | undefined>): { url: string; insecure: boolean; ca: Buffer | undefined } {
  const url = readString(env, "OTTO_URL");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`OTTO_URL: "${url}" is not a URL; give Otto's public URL, e.g. https://otto.example.com:7670`);
  }
  const insecure = env.OTTO_INSECURE === "1" || env.OTTO_INSECURE === "true";
  if (parsed.protocol !== "https:" && !(insecure && parsed.protocol === "http:")) {
    throw new ConfigError(`OTTO_URL: "${url}" must be https:// (Otto serves TLS; http:// only with OTTO_INSECURE=1)`);
  }
  const caFile = env.OTTO_CA_FILE;
  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw new ConfigError(`OTTO_CA_FILE: cannot read ${caFile}: ${(err as Error).message}`);
    }
  }
  return { url: parsed.href.replace(/\/+$/, ""), insecure, ca };
}
