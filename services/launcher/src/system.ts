import { chmod, mkdir } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { retry } from "@otto/kit/service";
import { startEmbeddedPostgres } from "./embedded-postgres.ts";
import { Supervisor, type LogMode } from "./supervisor.ts";
import { ensureLocalTokens, prepareLocalSecurity } from "./local-security.ts";
import { ensureS3Credentials } from "./s3-credentials.ts";
import { createSecretKeyFile } from "@otto/kit/secret-box";
import { writeFileAtomically } from "@otto/kit/atomic-file";
import { readRetention, retentionVariables } from "@otto/kit/retention-config";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const entry = (service: string) => join(repoRoot, "services", service, "src", "main.ts");

export interface S3Settings {
  endpoint: string;
  // Where agents on other machines reach it (presigned URLs), if not `endpoint`.
  publicEndpoint?: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
}

export interface SystemOptions {
  dataDir: string;
  coordinators?: number;
  agents?: number;
  agentSlots?: number;
  // The agents' labels: the same for all, or per agent (from 1).
  agentLabels?: string[] | ((agent: number) => string[]);
  gatewayPort?: number;
  // The gateway's URL as others reach it (its host goes into the gateway's
  // certificate, and the gateway binds it unless `gatewayListen` says
  // otherwise); without it, https://127.0.0.1:PORT.
  publicUrl?: string;
  gatewayListen?: string;
  logMode?: LogMode;
  logFile?: string;
  // Existing services; without them an embedded Postgres and s3rver start.
  databaseUrl?: string;
  s3?: S3Settings;
  env?: Record<string, string>;
  // Plain HTTP and no authentication (OTTO_INSECURE=1 / --insecure).
  insecure?: boolean;
  // Once aborted, the start ends after its current step and undoes the rest.
  signal?: AbortSignal;
}

export interface OttoSystem {
  gatewayUrl: string;
  registryUrl: string;
  databaseUrl: string;
  supervisor: Supervisor;
  processesFile: string;
  // Absent when insecure.
  caFile?: string;
  adminToken?: string;
  adminTokenFile?: string;
  stop(): Promise<void>;
}

// A URL of a server on this machine as this machine reaches it: one bound to
// every address (0.0.0.0, ::) is reached on loopback.
function fromThisMachine(url: string): string {
  return url.replace(/\/\/(0\.0\.0\.0|\[::\]|::)(?=:)/, "//127.0.0.1");
}

// Brings up a whole Otto: storage if none is given, then the registry, then
// every other process, each registered with the registry under its address.
export async function startSystem(options: SystemOptions): Promise<OttoSystem> {
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true });
  const supervisor = new Supervisor({ mode: options.logMode ?? "pretty", logFile: options.logFile });
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async () => {
    await supervisor.stopAll();
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  // Between the steps of the start: a stop asked for meanwhile ends it here.
  const checkpoint = () => options.signal?.throwIfAborted();
  try {
    checkpoint();
    let databaseUrl = options.databaseUrl;
    const storage: Array<{ name: string; pid: number | undefined; url: string }> = [];
    if (!databaseUrl) {
      supervisor.log("starting embedded PostgreSQL");
      const db = await retry(async () => startEmbeddedPostgres(join(dataDir, "postgres"), await freePort()), 3, 0);
      cleanups.push(() => db.stop());
      databaseUrl = db.url;
      checkpoint();
      storage.push({ name: "postgres", pid: db.pid, url: db.url.replace(/:[^:@/]*@/, "@") });
    }
    let s3 = options.s3;
    // With a public URL, the gateway (and the development S3, whose presigned
    // URLs agents on other machines use) binds its host or --listen's.
    const publicHost = options.publicUrl ? new URL(options.publicUrl).hostname.replace(/^\[(.*)\]$/, "$1") : undefined;
    const bindHost = options.gatewayListen ?? publicHost;
    const common: Record<string, string> = { OTTO_LOG_LEVEL: process.env.OTTO_LOG_LEVEL ?? "info", ...options.env };
    let certificates = async (_name: string, _kind: string, _hosts?: string[]): Promise<Record<string, string>> => ({});
    let tokens: { adminToken: string; adminTokenFile: string; joinToken: string } | undefined;
    let caFile: string | undefined;
    let secretsKeyFile: string | undefined;
    if (options.insecure) {
      common.OTTO_INSECURE = "1";
      supervisor.log("INSECURE: plain HTTP and no authentication (--insecure / OTTO_INSECURE=1); use only on a throwaway machine");
    } else {
      common.OTTO_INSECURE = "";
      await mkdir(join(dataDir, "agents"), { recursive: true });
      const security = await prepareLocalSecurity(dataDir);
      certificates = security.envFor;
      caFile = security.ca.caFile;
      secretsKeyFile = security.secretsKeyFile;
      await createSecretKeyFile(secretsKeyFile);
      tokens = await ensureLocalTokens(dataDir, databaseUrl);
      checkpoint();
    }
    if (!s3) {
      // The stored artifacts and logs themselves: for the s3 process's eyes only.
      const directory = join(dataDir, "s3");
      await mkdir(directory, { recursive: true, mode: 0o700 });
      await chmod(directory, 0o700);
      const keys = await ensureS3Credentials(dataDir);
      const bound = await supervisor.start({
        name: "s3",
        entry: join(repoRoot, "services/launcher/src/s3-dev-server.ts"),
        env: { ...common, OTTO_S3_DIR: directory, OTTO_S3_ACCESS_KEY: keys.accessKey, OTTO_S3_SECRET_KEY: keys.secretKey, ...(bindHost ? { OTTO_HOST: bindHost } : {}) },
      });
      const endpoint = fromThisMachine(bound);
      const publicEndpoint = publicHost ? `http://${publicHost.includes(":") ? `[${publicHost}]` : publicHost}:${new URL(bound).port}` : undefined;
      s3 = { endpoint, publicEndpoint, ...keys, bucket: "otto" };
      checkpoint();
    }
    const registryUrl = await supervisor.start({
      name: "registry",
      entry: entry("registry"),
      env: { ...common, ...(await certificates("registry", "registry")), DATABASE_URL: databaseUrl },
    });
    checkpoint();
    const withRegistry = { ...common, OTTO_REGISTRY_URL: registryUrl };
    // Coordinators sweep what retention expired (and have the objects
    // service delete it from storage).
    const retention = retentionEnv({ ...process.env, ...options.env });
    const starts: Promise<string>[] = [
      supervisor.start({ name: "parser", entry: entry("parser"), env: { ...withRegistry, ...(await certificates("parser", "parser")) } }),
      supervisor.start({
        name: "objects",
        entry: entry("objects"),
        env: {
          ...withRegistry,
          ...(await certificates("objects", "objects")),
          DATABASE_URL: databaseUrl,
          OTTO_S3_ENDPOINT: s3.endpoint,
          ...(s3.publicEndpoint ? { OTTO_S3_PUBLIC_ENDPOINT: s3.publicEndpoint } : {}),
          OTTO_S3_ACCESS_KEY: s3.accessKey,
          OTTO_S3_SECRET_KEY: s3.secretKey,
          OTTO_S3_BUCKET: s3.bucket,
        },
      }),
    ];
    for (let i = 1; i <= (options.coordinators ?? 1); i++) {
      const env: Record<string, string> = {
        ...withRegistry,
        ...retention,
        ...(await certificates(`coordinator-${i}`, "coordinator")),
        DATABASE_URL: databaseUrl,
      };
      if (secretsKeyFile) env.OTTO_SECRETS_KEY_FILE = secretsKeyFile;
      starts.push(supervisor.start({ name: `coordinator-${i}`, entry: entry("coordinator"), env }));
    }
    await Promise.all(starts);
    checkpoint();
    const gatewayEnv: Record<string, string> = { ...withRegistry, ...(await certificates("gateway", "gateway", publicHost ? [publicHost] : [])), DATABASE_URL: databaseUrl };
    if (bindHost) gatewayEnv.OTTO_HOST = bindHost;
    // The address its pages link to (cctray.xml's webUrl).
    if (options.publicUrl) gatewayEnv.OTTO_PUBLIC_URL = new URL(options.publicUrl).origin;
    const publicPort = options.publicUrl ? new URL(options.publicUrl).port : "";
    const gatewayPort = publicPort ? Number(publicPort) : options.publicUrl ? (options.insecure ? 80 : 443) : (options.gatewayPort ?? 7670);
    if (bindHost === "0.0.0.0" || bindHost === "::") {
      if (gatewayPort === 0) throw new Error(`the gateway binds every address (${bindHost}) on a port yet to be chosen: give --port or a --public-url with a port`);
      gatewayEnv.OTTO_ADVERTISE_URL = `${options.insecure ? "http" : "https"}://127.0.0.1:${gatewayPort}`;
    }
    const boundUrl = await supervisor.start({ name: "gateway", entry: entry("gateway"), env: gatewayEnv }, gatewayPort);
    const gatewayUrl = options.publicUrl ? new URL(options.publicUrl).origin : boundUrl;
    checkpoint();
    // Agents reach Otto as agents on other machines do: through the
    // gateway's URL alone.
    const agentStarts: Promise<string>[] = [];
    for (let i = 1; i <= (options.agents ?? 1); i++) {
      const env: Record<string, string> = {
        // When the whole system stops, agents hand their tasks back at once,
        // and those run again when it starts next.
        OTTO_AGENT_ON_STOP: process.env.OTTO_AGENT_ON_STOP || "hand-back",
        ...common,
        OTTO_URL: fromThisMachine(boundUrl),
        OTTO_AGENT_ID: `agent-${i}`,
        OTTO_AGENT_SLOTS: String(options.agentSlots ?? 2),
        OTTO_AGENT_WORK_DIR: join(dataDir, "agents", `agent-${i}`),
      };
      if (caFile) env.OTTO_CA_FILE = caFile;
      if (tokens) {
        env.OTTO_AGENT_JOIN_TOKEN = tokens.joinToken;
        env.OTTO_AGENT_CREDENTIAL_FILE = join(dataDir, "agents", `agent-${i}.credential`);
      }
      const labels = typeof options.agentLabels === "function" ? options.agentLabels(i) : options.agentLabels;
      if (labels) env.OTTO_AGENT_LABELS = labels.join(",");
      agentStarts.push(supervisor.start({ name: `agent-${i}`, entry: entry("agent"), env, withhold: storageCredential }));
    }
    await Promise.all(agentStarts);
    checkpoint();
    const processesFile = join(dataDir, "processes.json");
    // One write at a time, each to a temporary file renamed into place, so
    // readers never see a half-written file.
    let writes = Promise.resolve();
    const writeProcesses = () => {
      const text = JSON.stringify({ gateway: gatewayUrl, processes: [...storage, ...supervisor.info()] }, null, 2) + "\n";
      writes = writes.then(async () => {
        await writeFileAtomically(processesFile, text);
      }).catch(() => {});
      return writes;
    };
    await writeProcesses();
    supervisor.on("changed", () => void writeProcesses());
    return {
      gatewayUrl,
      registryUrl,
      databaseUrl,
      supervisor,
      processesFile,
      caFile,
      adminToken: tokens?.adminToken,
      adminTokenFile: tokens?.adminTokenFile,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// The retention settings that are set, once checked (a wrong one stops
// the launcher before any process starts).
export function retentionEnv(env: Record<string, string | undefined>): Record<string, string> {
  readRetention(env);
  return Object.fromEntries(retentionVariables.flatMap((name) => (env[name] ? [[name, env[name]]] : [])));
}

// Agents run other people's code: nothing that opens the database, the
// object store or the secrets reaches them, even from the launcher's own
// environment.
function storageCredential(name: string): boolean {
  return /^(DATABASE_URL|PG[A-Z]+|OTTO_S3_[A-Z_]+|OTTO_SECRETS_[A-Z_]+|AWS_[A-Z_]+|OTTO_TEST_DATABASE_URL)$/.test(name);
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}
