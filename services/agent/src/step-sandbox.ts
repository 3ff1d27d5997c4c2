import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// How the agent confines its steps (native/sandbox.h says what a step sees).
export interface SandboxSettings {
  uid: number;
  gid: number;
  // Host paths bound read-only (`expose`) or read-write (`share`) at a path inside.
  expose: Array<{ from: string; to: string }>;
  share: Array<{ from: string; to: string }>;
}

// Where a step's own places are, inside its sandbox.
export const sandboxPaths = { workspace: "/workspace", home: "/home/otto", tmp: "/tmp", otto: "/opt/otto" };
export const sandboxPath = `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${sandboxPaths.otto}/bin`;

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

// The otto CLI and the Node that runs it, for steps to call Otto with: the
// code only (never the data directory, which may sit in the checkout). An
// agent installed from its package (no checkout around it) offers none.
export function ottoCliExposure(nodeBinary = process.execPath): SandboxSettings["expose"] {
  if (!existsSync(join(repoRoot, "sdk/src/cli.ts"))) return [];
  const inside = (path: string) => join(sandboxPaths.otto, path);
  return [
    ...["package.json", "gen", "contracts", "sdk", "services", "node_modules"].map((path) => ({ from: join(repoRoot, path), to: inside(path) })),
    { from: nodeBinary, to: inside("bin/node") },
    { from: join(repoRoot, "services/agent/sandbox/otto"), to: inside("bin/otto") },
  ];
}

// `uid:gid`, or `root` (which an operator must ask for: a step running as
// root in its namespaces can undo them).
export function parseStepUser(text: string): { uid: number; gid: number } {
  if (text === "root") return { uid: 0, gid: 0 };
  const match = /^(\d+):(\d+)$/.exec(text);
  if (!match || Number(match[1]) === 0) throw new Error(`OTTO_AGENT_STEP_USER must be UID:GID of an unprivileged user, or root (got "${text}")`);
  return { uid: Number(match[1]), gid: Number(match[2]) };
}

// `FROM:TO,FROM:TO`: host directories a sandboxed step gets read-write.
export function parseShares(text: string): SandboxSettings["share"] {
  if (!text.trim()) return [];
  return text.split(",").map((pair) => {
    const [from, to = from] = pair.split(":");
    if (!from.startsWith("/") || !to.startsWith("/")) throw new Error(`OTTO_AGENT_SANDBOX_SHARE takes absolute FROM[:TO] paths (got "${pair}")`);
    return { from, to };
  });
}

// The step launcher's arguments for these settings.
export function launcherArguments(sandbox: SandboxSettings | undefined): string[] {
  if (!sandbox) return [];
  return [
    "--sandbox",
    `${sandbox.uid}:${sandbox.gid}`,
    ...sandbox.expose.flatMap(({ from, to }) => ["--expose", `${from}:${to}`]),
    ...sandbox.share.flatMap(({ from, to }) => ["--share", `${from}:${to}`]),
  ];
}

export interface JobDirectory {
  // The job's directory on the host; the launcher is given it when sandboxed.
  root: string;
  // The workspace on the host (artifacts are read from here).
  workspace: string;
  // What the launcher is told as the step's directory.
  launchDirectory: string;
  // The variables that say where the step's places are, as the step sees them.
  env: Record<string, string>;
  // The agent slot whose directory it is, kept for the slot's next job.
  slot?: number;
  // Who owns its places when it is not the agent's own user: the steps'.
  owner?: { uid: number; gid: number };
}

// The places of a job's directory, and their modes.
const places = { workspace: 0o755, home: 0o700, tmp: 0o700 } as const;

// Slot directories that the job before left empty, to be used again as they
// are: making and deleting four directories per job costs the file system
// more than the job (ext4 searches for a free inode past those deleted
// lately), where a directory used again costs a few calls.
const emptySlots = new Set<string>();

// A fresh job directory: `workspace/`, `home/` and `tmp/`, owned by the
// steps' user when sandboxed by root (without root, the steps' user is the
// agent's own, seen from the step's user namespace). With a `slot`, the
// slot's own directory, used again when the job before left it empty;
// else a new one. Made with a few blocking calls: each asynchronous one
// would cost a trip through libuv's thread pool and a wake-up of the agent.
export async function makeJobDirectory(workRoot: string, sandbox: SandboxSettings | undefined, slot?: number): Promise<JobDirectory> {
  mkdirSync(workRoot, { recursive: true, mode: 0o700 });
  let root: string;
  if (slot === undefined) {
    root = mkdtempSync(join(workRoot, "job-"));
  } else {
    root = join(workRoot, `slot-${slot}`);
    // Left by an agent that stopped, or by a job that left something in it.
    if (!emptySlots.has(root)) await rm(root, { recursive: true, force: true });
    emptySlots.delete(root);
    mkdirSync(root, { recursive: true, mode: 0o700 });
  }
  const owner = sandbox && process.getuid?.() === 0 ? { uid: sandbox.uid, gid: sandbox.gid } : undefined;
  for (const [name, mode] of Object.entries(places)) {
    const path = join(root, name);
    mkdirSync(path, { recursive: true, mode });
    // As new, whatever the job before made of it.
    chmodSync(path, mode);
    if (owner) chownSync(path, owner.uid, owner.gid);
  }
  const workspace = join(root, "workspace");
  if (!sandbox) {
    return { root, workspace, launchDirectory: workspace, env: { OTTO_WORKSPACE: workspace }, slot };
  }
  return {
    root,
    workspace,
    slot,
    owner,
    launchDirectory: root,
    env: {
      OTTO_WORKSPACE: sandboxPaths.workspace,
      HOME: sandboxPaths.home,
      TMPDIR: sandboxPaths.tmp,
      PATH: sandboxPath,
    },
  };
}

// Done with a job directory. A slot's is kept for the slot's next job when
// the job left its places empty (as most short jobs do); anything else is
// removed, walking it without blocking the agent however big it is.
export async function removeJobDirectory(job: JobDirectory): Promise<void> {
  if (job.slot !== undefined && leftEmpty(job.root)) {
    emptySlots.add(job.root);
    return;
  }
  emptySlots.delete(job.root);
  await rm(job.root, { recursive: true, force: true });
}

// Whether a job directory holds its places, empty, and nothing else
// (`.root`: where the launcher built each step's root, empty out here).
function leftEmpty(root: string): boolean {
  try {
    const left = [...Object.keys(places), ".root"].flatMap((place) => entriesOf(join(root, place)));
    return left.length === 0 && readdirSync(root).every((name) => name in places || name === ".root");
  } catch {
    return false;
  }
}

function entriesOf(path: string): string[] {
  try {
    return readdirSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}
