// Builds a packed workspace package, and the workspace packages it depends on
// first, into what its tarball ships (dist/). Each package's `prepack` runs
// this, so `npm pack` in gen/, contracts/, sdk/ or services/agent/ makes a
// tarball that installs and runs without a build step:
// - gen, contracts, sdk: ES modules and declarations, compiled by tsc;
// - the agent: one ES module bundled by esbuild with the workspace code it
//   uses (kit, gen), its npm dependencies left to its package.json, and the
//   JavaScript step launcher beside it.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const root = join(import.meta.dirname, "..");
const packed: Record<string, string> = { "@otto/gen": "gen", "@otto/contracts": "contracts", "@otto/sdk": "sdk", "@otto/agent": "services/agent" };

const manifestOf = (name: string) => JSON.parse(readFileSync(join(root, packed[name], "package.json"), "utf8"));

function dependenciesFirst(name: string, order: string[] = []): string[] {
  if (!packed[name]) throw new Error(`${name} is not a package Otto packs (${Object.keys(packed).join(", ")})`);
  for (const dependency of Object.keys(manifestOf(name).dependencies ?? {})) if (dependency in packed) dependenciesFirst(dependency, order);
  if (!order.includes(name)) order.push(name);
  return order;
}

async function compile(dir: string): Promise<void> {
  const result = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(dir, "tsconfig.build.json")], { stdio: "inherit" });
  if (result.status !== 0) throw new Error(`tsc failed for ${dir}`);
}

async function bundleAgent(dir: string): Promise<void> {
  const dependencies = new Set(Object.keys(manifestOf("@otto/agent").dependencies ?? {}));
  const undeclared = new Set<string>();
  await build({
    entryPoints: [join(dir, "src/main.ts")],
    outfile: join(dir, "dist/otto-agent.mjs"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node22",
    conditions: ["otto-source"],
    logLevel: "warning",
    plugins: [
      {
        name: "npm dependencies stay external",
        setup(builder) {
          builder.onResolve({ filter: /^[^./]/ }, ({ path }) => {
            if (path.startsWith("@otto/") || path.startsWith("node:")) return path.startsWith("node:") ? { path, external: true } : undefined;
            const name = path.split("/").slice(0, path.startsWith("@") ? 2 : 1).join("/");
            if (!dependencies.has(name)) undeclared.add(name);
            return { path, external: true };
          });
        },
      },
    ],
  });
  if (undeclared.size > 0) throw new Error(`the agent imports ${[...undeclared].join(", ")}, missing from services/agent/package.json's dependencies`);
  copyFileSync(join(dir, "src/step-launcher.mjs"), join(dir, "dist/step-launcher.mjs"));
}

const names = process.argv.slice(2);
if (names.length === 0) names.push(...Object.keys(packed));
for (const name of [...new Set(names.flatMap((name) => dependenciesFirst(name)))]) {
  const dir = join(root, packed[name]);
  rmSync(join(dir, "dist"), { recursive: true, force: true });
  mkdirSync(join(dir, "dist"));
  if (name === "@otto/agent") await bundleAgent(dir);
  else await compile(dir);
}
