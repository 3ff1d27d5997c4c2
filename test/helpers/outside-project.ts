// A project outside this repository that installs Otto's packed packages, as
// another team would: tarballs made by `npm pack`, a plain `npm install`,
// and a user's environment (none of this repository's npm settings).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";

const repoRoot = join(import.meta.dirname, "../..");

export interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"], timeout: 180_000 });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

export function succeeded(what: string, outcome: Outcome): Outcome {
  assert.equal(outcome.code, 0, `${what} failed:\n${outcome.stdout}\n${outcome.stderr}`);
  return outcome;
}

// What a user's shell has: no NODE_OPTIONS or npm settings of this
// repository's scripts (its source condition would point at files the
// tarballs do not ship), and no Otto settings.
export function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (name === "NODE_OPTIONS" || /^npm_/i.test(name) || name.startsWith("OTTO_")) continue;
    env[name] = value;
  }
  env.PATH = [dirname(process.execPath), "/usr/local/bin", "/usr/bin", "/bin"].join(delimiter);
  return { ...env, ...extra };
}

// The tarballs of these workspace packages, made by `npm pack` (each
// package's prepack builds it), in a fresh directory.
export async function pack(packages: string[]): Promise<{ dir: string; tarballs: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "otto-packs-"));
  succeeded("npm pack", await run("npm", ["pack", ...packages.flatMap((name) => ["-w", name]), "--pack-destination", dir], { cwd: repoRoot, env: userEnv() }));
  const tarballs = (await readdir(dir)).filter((name) => name.endsWith(".tgz")).sort();
  return { dir, tarballs: tarballs.map((name) => join(dir, name)) };
}

// A new project, outside the repository, with the tarballs installed.
export async function installedProject(tarballs: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const project = await mkdtemp(join(tmpdir(), "otto-consumer-"));
  await writeFile(join(project, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  succeeded("npm install", await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...tarballs], { cwd: project, env }));
  return project;
}
