import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, rmdir } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import type { OsUser, PostgresBinaries } from "./postgres-cluster.ts";

// Where the embedded Postgres's programs and files are as it sees them, and
// how to start them. As root, Postgres runs as the "postgres" user; a
// checkout in a directory only root may enter (mode 0700) keeps that user
// from the binaries and the data beneath it. Then each Postgres program runs
// in a mount namespace of its own where both are bound at a place it can
// reach (/tmp/otto-postgres-<hash of the directory>): the files stay where
// they are, and the launcher, root, keeps using their real paths.
export interface PostgresReach {
  bin: PostgresBinaries;
  // A path under the Postgres directory as Postgres sees it.
  path(hostPath: string): string;
  spawn(program: string, args: string[], options: SpawnOptions): ChildProcess;
  // Runs a program to its end: its output, or an error with it and the exit code.
  run(program: string, args: string[], options: SpawnOptions & { timeoutMs?: number }): Promise<string>;
  // Once Postgres has stopped: removes the place it was bound at, if any.
  release(): Promise<void>;
}

export async function postgresReach(bin: PostgresBinaries, dir: string, user: OsUser | undefined): Promise<PostgresReach> {
  const reach = await reachFor(bin, dir, user);
  return {
    ...reach,
    run: (program, args, { timeoutMs, ...options }) => toEnd(reach.spawn(program, args, { ...options, stdio: ["ignore", "pipe", "pipe"] }), program, timeoutMs),
  };
}

async function reachFor(bin: PostgresBinaries, dir: string, user: OsUser | undefined): Promise<Omit<PostgresReach, "run">> {
  const native = dirname(dirname(bin.postgres));
  if (!user || ((await reachable(native, user)) && (await reachable(dir, user)))) {
    return { bin, path: (hostPath) => hostPath, spawn: (program, args, options) => spawn(program, args, { ...options, ...user }), release: async () => {} };
  }
  const mirror = join("/tmp", `otto-postgres-${createHash("sha256").update(resolve(dir)).digest("hex").slice(0, 16)}`);
  await ownDirectory(mirror);
  for (const place of ["native", "cluster"]) await ownDirectory(join(mirror, place));
  const under = (root: string, at: string, hostPath: string) => join(at, relative(root, resolve(hostPath)));
  return {
    bin: { initdb: under(native, join(mirror, "native"), bin.initdb), postgres: under(native, join(mirror, "native"), bin.postgres) },
    path: (hostPath) => under(dir, join(mirror, "cluster"), hostPath),
    // Empty mount points out here; one still in use (a Postgres started
    // by hand) is left.
    async release() {
      for (const place of [join(mirror, "native"), join(mirror, "cluster"), mirror]) await rmdir(place).catch(() => {});
    },
    spawn: (program, args, options) =>
      spawn(
        "unshare",
        [
          "--mount",
          "--propagation=private",
          "--",
          "sh",
          "-c",
          'mount --bind "$1" "$2" && mount --bind "$3" "$4" && shift 4 && exec setpriv --reuid="$OTTO_PG_UID" --regid="$OTTO_PG_GID" --clear-groups "$@"',
          "sh",
          native,
          join(mirror, "native"),
          resolve(dir),
          join(mirror, "cluster"),
          program,
          ...args,
        ],
        { ...options, env: { ...options.env, OTTO_PG_UID: String(user.uid), OTTO_PG_GID: String(user.gid) } },
      ),
  };
}

async function toEnd(child: ChildProcess, program: string, timeoutMs: number | undefined): Promise<string> {
  let output = "";
  child.stdout!.on("data", (chunk) => (output += chunk));
  child.stderr!.on("data", (chunk) => (output += chunk));
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => child.kill(), timeoutMs);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  }).finally(() => clearTimeout(timer));
  if (code !== 0) throw new Error(`${basename(program)} failed (exit ${code}):\n${output}`);
  return output.trim();
}

// Whether `user` may enter every directory on the way to `path`, and `path`.
export async function reachable(path: string, user: OsUser): Promise<boolean> {
  for (let at = resolve(path); ; at = dirname(at)) {
    const info = await lstat(at).catch(() => undefined);
    if (info?.isDirectory()) {
      const may = info.uid === user.uid ? 0o100 : info.gid === user.gid ? 0o010 : 0o001;
      if ((info.mode & may) === 0) return false;
    }
    if (at === dirname(at)) return true;
  }
}

// A directory of root's that nobody else may change, made if need be (in
// /tmp, where anybody may make a directory of that name first: then it is
// refused).
async function ownDirectory(path: string): Promise<void> {
  await mkdir(path, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== "EEXIST") throw err;
  });
  const info = await lstat(path);
  if (!info.isDirectory() || info.uid !== 0 || (info.mode & 0o022) !== 0) {
    throw new Error(`${path} must be a directory of root's that only root may change (it is not): remove it and start again`);
  }
  await chmod(path, 0o755);
}
