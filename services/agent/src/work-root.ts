import { chmod, lstat, mkdir, realpath } from "node:fs/promises";
import { dirname } from "node:path";

// Why the agent must not work in `workRoot`, or undefined when it may: the
// agent (root, when it sandboxes steps) creates, chowns, mounts and deletes
// under it, so no other user may own or write any directory on its way
// (a directory in /tmp made first by someone else would let them swap it).
export async function workRootProblem(workRoot: string): Promise<string | undefined> {
  await mkdir(workRoot, { recursive: true, mode: 0o700 });
  const uid = process.getuid?.() ?? 0;
  workRoot = await realpath(workRoot);
  let path = workRoot;
  for (;;) {
    const info = await lstat(path);
    if (info.uid !== uid && info.uid !== 0) return `${path} belongs to another user (uid ${info.uid})`;
    const othersMayWrite = (info.mode & 0o022) !== 0 && (info.mode & 0o1000) === 0;
    if (othersMayWrite && path !== workRoot) return `${path} may be written by other users`;
    // Made by an earlier version with mode 0755: closed now.
    if (path === workRoot && (info.mode & 0o077) !== 0) await chmod(path, 0o700);
    const parent = dirname(path);
    if (parent === path) return undefined;
    path = parent;
  }
}
