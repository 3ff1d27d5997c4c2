import { chownSync, mkdirSync, mkdtempSync, rmdirSync } from "node:fs";
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
// code only (never the data directory, which may sit in the checkout).
export function ottoCliExposure(nodeBinary = process.execPath): SandboxSettings["expose"] {
  const inside = (path: string) => join(sandboxPaths.otto, path);
  return [
    ...["package.json", "gen", "sdk", "services", "node_modules"].map((path) => ({ from: join(repoRoot, path), to: inside(path) })),
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
}

// A fresh job directory: `workspace/`, `home/` and `tmp/`, owned by the
// steps' user when sandboxed by root (without root, the steps' user is the
// agent's own, seen from the step's user namespace). Made with a few
// blocking calls: each asynchronous one would cost a trip through libuv's
// thread pool and a wake-up of the agent, a dozen per job.
export async function makeJobDirectory(workRoot: string, sandbox: SandboxSettings | undefined): Promise<JobDirectory> {
  mkdirSync(workRoot, { recursive: true, mode: 0o700 });
  const root = mkdtempSync(join(workRoot, "job-"));
  const places = { workspace: join(root, "workspace"), home: join(root, "home"), tmp: join(root, "tmp") };
  for (const [name, path] of Object.entries(places)) {
    mkdirSync(path, { mode: name === "workspace" ? 0o755 : 0o700 });
    if (sandbox && process.getuid?.() === 0) chownSync(path, sandbox.uid, sandbox.gid);
  }
  if (!sandbox) {
    return { root, workspace: places.workspace, launchDirectory: places.workspace, env: { OTTO_WORKSPACE: places.workspace } };
  }
  return {
    root,
    workspace: places.workspace,
    launchDirectory: root,
    env: {
      OTTO_WORKSPACE: sandboxPaths.workspace,
      HOME: sandboxPaths.home,
      TMPDIR: sandboxPaths.tmp,
      PATH: sandboxPath,
    },
  };
}

// Removes a job directory: at once when its steps left its places empty (as
// most short jobs do), else walking it without blocking the agent, however
// big the workspace.
export async function removeJobDirectory(job: JobDirectory): Promise<void> {
  try {
    for (const place of ["workspace", "home", "tmp"]) rmdirSync(join(job.root, place));
    rmdirSync(job.root);
  } catch {
    await rm(job.root, { recursive: true, force: true });
  }
}
