// Compiles a packed workspace package, and the workspace packages it depends
// on first, to the ES modules and declarations its tarball ships (dist/).
// Each package's `prepack` runs this, so `npm pack` in gen/, contracts/ or
// sdk/ makes a tarball that installs and runs without a build step.
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const packed: Record<string, string> = { "@otto/gen": "gen", "@otto/contracts": "contracts", "@otto/sdk": "sdk" };

function dependenciesFirst(name: string, order: string[] = []): string[] {
  const dir = packed[name];
  if (!dir) throw new Error(`${name} is not a package Otto packs (${Object.keys(packed).join(", ")})`);
  const manifest = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
  for (const dependency of Object.keys(manifest.dependencies ?? {})) if (dependency in packed) dependenciesFirst(dependency, order);
  if (!order.includes(name)) order.push(name);
  return order;
}

const names = process.argv.slice(2);
if (names.length === 0) names.push(...Object.keys(packed));
const tsc = join(root, "node_modules/typescript/bin/tsc");
for (const name of [...new Set(names.flatMap((name) => dependenciesFirst(name)))]) {
  const dir = join(root, packed[name]);
  rmSync(join(dir, "dist"), { recursive: true, force: true });
  const result = spawnSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.build.json")], { stdio: "inherit" });
  if (result.status !== 0) {
    console.error(`building ${name} failed`);
    process.exit(1);
  }
}
