import { chmod, lstat, mkdir, readFile, realpath, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";

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

// Why this agent process cannot take `workRoot` for its own, or undefined
// once it has: its slots' directories are used again job after job
// (step-sandbox.ts), so two agents working in one directory would clear each
// other's jobs. The claim is the agent's process id in `agent.pid`, taken over
// from a process that is gone.
export async function claimWorkRoot(workRoot: string): Promise<string | undefined> {
  const file = join(workRoot, "agent.pid");
  const holder = Number((await readFile(file, "utf8").catch(() => "")).trim());
  if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && isAlive(holder)) {
    return `another agent (process ${holder}) works there; give each agent its own OTTO_AGENT_WORK_DIR (or remove ${file} if that process is not an agent)`;
  }
  await writeFile(file, `${process.pid}\n`, { mode: 0o600 });
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
