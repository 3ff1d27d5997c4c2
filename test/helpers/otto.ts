import { existsSync, readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import pg from "pg";
import { startSystem, type OttoSystem, type SystemOptions } from "@otto/launcher/system";
import { createOttoClient, type OttoClient } from "@otto/sdk";

export interface TestOtto extends OttoSystem {
  client: OttoClient;
  dataDir: string;
  // A directory every step sees at the same path, read-write, for the marker
  // and gate files through which tests and steps meet (steps are sandboxed).
  stepsDir: string;
  logFile: string;
  stopAndClean(): Promise<void>;
}

// A whole Otto of real processes for one test file: embedded Postgres in a
// fresh directory, or a fresh database on OTTO_TEST_DATABASE_URL's server.
export async function startTestOtto(options: Partial<SystemOptions> = {}): Promise<TestOtto> {
  const dataDir = await mkdtemp(join(tmpdir(), "otto-test-"));
  await chmod(dataDir, 0o755);
  const stepsDir = await mkdtemp(join(tmpdir(), "otto-steps-"));
  await chmod(stepsDir, 0o777);
  const shares = [options.env?.OTTO_AGENT_SANDBOX_SHARE, stepsDir].filter(Boolean).join(",");
  const logFile = join(dataDir, "otto.log");
  let databaseUrl: string | undefined;
  let dropDatabase = async () => {};
  const serverUrl = process.env.OTTO_TEST_DATABASE_URL;
  if (serverUrl) {
    const name = `otto_test_${randomBytes(6).toString("hex")}`;
    const admin = new pg.Client({ connectionString: serverUrl });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.end();
    const url = new URL(serverUrl);
    url.pathname = `/${name}`;
    databaseUrl = url.toString();
    dropDatabase = async () => {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    };
  }
  const system = await startSystem({
    dataDir,
    gatewayPort: 0,
    logMode: "quiet",
    logFile,
    databaseUrl,
    ...options,
    env: { ...options.env, OTTO_AGENT_SANDBOX_SHARE: shares },
  });
  if (system.caFile) knownCas.add(readFileSync(system.caFile, "utf8"));
  if (system.adminToken) gatewayTokens.set(new URL(system.gatewayUrl).origin, system.adminToken);
  const client = createOttoClient({ baseUrl: system.gatewayUrl, token: system.adminToken, caFile: system.caFile });
  return {
    ...system,
    client,
    dataDir,
    stepsDir,
    logFile,
    async stopAndClean() {
      await system.stop();
      await dropDatabase().catch(() => {});
      if (!process.env.OTTO_TEST_KEEP) for (const dir of [dataDir, stepsDir]) await rm(dir, { recursive: true, force: true });
    },
  };
}

// A fresh directory of `otto.stepsDir`, which steps may read and write.
export async function stepsSharedDir(otto: TestOtto, name: string): Promise<string> {
  const dir = await mkdtemp(join(otto.stepsDir, `${name}-`));
  await chmod(dir, 0o777);
  return dir;
}

// Polls `check` until it returns a value other than undefined/false, or fails
// after `timeoutMs` with `what` in the message.
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value as T;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export async function tailOfLog(otto: TestOtto, lines = 80): Promise<string> {
  const text = await readFile(otto.logFile, "utf8").catch(() => "");
  return text.split("\n").slice(-lines).join("\n");
}

// Alive and not a zombie: a killed step's child is reparented to PID 1, which
// may take its time to reap it, and kill(pid, 0) still succeeds until then.
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return !existsSync("/proc/self/stat");
  }
}

// The CAs of the test Ottos started so far, and their gateways' admin tokens:
// raw requests trust the first and send the second, as curl with
// --cacert and -H "Authorization: Bearer ..." would.
const knownCas = new Set<string>();
const gatewayTokens = new Map<string, string>();

// Trusts a CA (PEM file) for raw requests and sends `token` to `gatewayUrl`.
export function trust(caFile: string, gatewayUrl?: string, token?: string): void {
  knownCas.add(readFileSync(caFile, "utf8"));
  if (gatewayUrl && token) gatewayTokens.set(new URL(gatewayUrl).origin, token);
}

export interface RawResponse {
  status: number;
  text: string;
  headers: http.IncomingHttpHeaders;
}

// One HTTP(S) request. `authorization: null` sends none at all.
export function request(
  url: string,
  options: { method?: string; headers?: Record<string, string | null>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const target = new URL(url);
  const headers: Record<string, string> = {};
  const token = gatewayTokens.get(target.origin);
  if (token && options.headers?.authorization === undefined) headers.authorization = `Bearer ${token}`;
  for (const [name, value] of Object.entries(options.headers ?? {})) if (value !== null) headers[name] = value;
  const transport = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      target,
      { method: options.method ?? "GET", headers, ca: knownCas.size > 0 ? [...knownCas] : undefined },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (part: Buffer) => parts.push(part));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(parts).toString("utf8"), headers: res.headers }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

// Raw Connect-over-HTTP calls with JSON bodies, as curl would make them.
export async function postJson(baseUrl: string, path: string, body: unknown, headers: Record<string, string | null> = {}) {
  const response = await request(baseUrl + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = response.text;
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json, contentType: response.headers["content-type"] ?? "" };
}

// A server-streaming method called with a plain JSON body: one JSON message per line.
export async function postJsonStream(baseUrl: string, path: string, body: unknown): Promise<{ status: number; messages: any[] }> {
  const { status, text } = await postJson(baseUrl, path, body);
  const messages = text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
  return { status, messages };
}
