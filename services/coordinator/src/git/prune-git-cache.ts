// The coordinators' cache of fetched commits (read-file-at-commit.ts) keeps
// a bare repository per repository and credential; each read marks its
// repository used (its directory's modification time). A repository unused
// for longer than `maxIdleMs` is deleted: renamed out of the way first, so a
// read that comes at that moment makes a new one and fetches again. Left-
// overs of a repository being made, or being deleted, by a process that
// died go after an hour.
import { randomBytes } from "node:crypto";
import { readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";

const leftoverMs = 3_600_000;

export async function pruneGitCache(cacheDir: string, maxIdleMs: number, now = Date.now()): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(cacheDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  const removed: string[] = [];
  for (const name of names) {
    const leftover = name.startsWith(".init-") || name.startsWith(".prune-");
    if (!leftover && !name.endsWith(".git")) continue;
    const path = join(cacheDir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isDirectory() || now - info.mtimeMs <= (leftover ? leftoverMs : maxIdleMs)) continue;
    const doomed = leftover ? path : join(cacheDir, `.prune-${randomBytes(6).toString("hex")}`);
    if (!leftover) {
      try {
        await rename(path, doomed);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
        throw err;
      }
    }
    await rm(doomed, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

// Marks a cache repository used now.
export async function markUsed(repo: string): Promise<void> {
  const now = new Date();
  await utimes(repo, now, now).catch(() => {});
}
