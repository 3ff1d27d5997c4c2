// The workspaces are packages with edges: no import leaves its package by a
// relative path, another package is reached only by its name through that
// package's exports map, and a package that is packed for other projects
// (gen, contracts, sdk) imports only what its own package.json declares.
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { builtinModules } from "node:module";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";

const root = join(import.meta.dirname, "..");
const rootManifest = JSON.parse(await readFile(join(root, "package.json"), "utf8"));
const workspaces = ["gen", "contracts", "sdk", "web", ...(await readdir(join(root, "services"))).map((name) => `services/${name}`)];
const packed = new Set(["gen", "contracts", "sdk"]);

interface Manifest {
  name: string;
  exports?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const manifests = new Map<string, Manifest>();
for (const dir of workspaces) manifests.set(dir, JSON.parse(await readFile(join(root, dir, "package.json"), "utf8")));

async function sources(dir: string): Promise<string[]> {
  const entries = await readdir(join(root, dir), { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && /\.(ts|tsx|js)$/.test(entry.name) && !/(^|\/)(node_modules|dist)(\/|$)|^web\/assets(\/|$)/.test(relative(root, entry.parentPath)))
    .map((entry) => join(entry.parentPath, entry.name));
}

function specifiers(source: string): string[] {
  const patterns = [/^\s*(?:import|export)\s[^;]*?\sfrom\s*["']([^"']+)["']/gm, /^\s*import\s*["']([^"']+)["']/gm, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g];
  return patterns.flatMap((pattern) => [...source.matchAll(pattern)].map((match) => match[1]));
}

const packageName = (specifier: string) => specifier.split("/").slice(0, specifier.startsWith("@") ? 2 : 1).join("/");
const builtins = new Set(builtinModules);
const isBuiltin = (specifier: string) => specifier.startsWith("node:") || builtins.has(packageName(specifier));

test("every workspace package has an exports map and a name the root declares as a workspace", () => {
  assert.deepEqual([...rootManifest.workspaces].sort(), ["contracts", "gen", "sdk", "services/*", "web"]);
  for (const [dir, manifest] of manifests) {
    assert.match(manifest.name, /^@otto\//, `${dir}'s name`);
    assert.ok(manifest.exports && Object.keys(manifest.exports).length > 0, `${dir} has an exports map`);
  }
});

test("no import leaves its package by a relative path", async () => {
  const offending: string[] = [];
  for (const dir of [...workspaces, "test", "bench", "scripts"]) {
    const home = resolve(root, ["test", "bench", "scripts"].includes(dir) ? "." : dir);
    for (const file of await sources(dir)) {
      for (const specifier of specifiers(await readFile(file, "utf8"))) {
        if (!specifier.startsWith(".")) continue;
        const target = resolve(dirname(file), specifier);
        const outside = relative(home, target).startsWith("..");
        const intoWorkspace = workspaces.some((w) => w !== dir && !relative(resolve(root, w), target).startsWith(".."));
        if (outside || intoWorkspace) offending.push(`${relative(root, file)}: ${specifier}`);
      }
    }
  }
  assert.deepEqual(offending, []);
});

test("a packed package imports only node built-ins, itself, and what its package.json declares", async () => {
  const offending: string[] = [];
  for (const dir of packed) {
    const manifest = manifests.get(dir)!;
    const declared = new Set([manifest.name, ...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.peerDependencies ?? {})]);
    for (const file of await sources(dir)) {
      for (const specifier of specifiers(await readFile(file, "utf8"))) {
        if (specifier.startsWith(".") || isBuiltin(specifier)) continue;
        if (!declared.has(packageName(specifier))) offending.push(`${relative(root, file)}: ${specifier}`);
      }
    }
  }
  assert.deepEqual(offending, []);
});

test("the SDK reaches no service: its dependencies are the contract, the rules and Connect", () => {
  const sdk = manifests.get("sdk")!;
  const services = [...manifests.entries()].filter(([dir]) => dir.startsWith("services/")).map(([, m]) => m.name);
  for (const dependency of Object.keys({ ...sdk.dependencies, ...sdk.peerDependencies })) assert.ok(!services.includes(dependency), `@otto/sdk depends on ${dependency}`);
});
