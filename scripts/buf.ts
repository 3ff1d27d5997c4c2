// Runs the buf binary from the platform package npm installed. (The
// @bufbuild/buf wrapper cannot be locked here: the registry this project
// installs from lacks some of its optional platform packages, so `npm ci`
// would refuse the lock file.)
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

export function bufPath(): string {
  const arch = process.arch === "arm64" ? "aarch64" : process.arch;
  const name = `@bufbuild/buf-${process.platform}-${arch}`;
  try {
    return join(dirname(createRequire(import.meta.url).resolve(`${name}/package.json`)), "bin", "buf");
  } catch {
    throw new Error(`${name} is not installed; buf is only set up for linux x64 and aarch64 here`);
  }
}

if (import.meta.main) {
  const result = spawnSync(bufPath(), process.argv.slice(2), { stdio: "inherit" });
  process.exit(result.status ?? 1);
}
