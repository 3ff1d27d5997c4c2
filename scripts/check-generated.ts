// Fails when gen/src/ differs from what `buf generate` makes of proto/ now.
import { execFileSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { bufPath } from "./buf.ts";

const root = join(import.meta.dirname, "..");
const scratch = await mkdtemp(join(tmpdir(), "otto-gen-"));
try {
  execFileSync(bufPath(), ["generate", "--output", scratch], { cwd: root, stdio: "inherit" });
  const fresh = await files(join(scratch, "gen", "src"));
  const checkedIn = await files(join(root, "gen", "src"));
  const problems: string[] = [];
  for (const [path, text] of fresh) {
    if (!checkedIn.has(path)) problems.push(`missing from gen/: ${path}`);
    else if (checkedIn.get(path) !== text) problems.push(`out of date: gen/src/${path}`);
  }
  for (const path of checkedIn.keys()) if (!fresh.has(path)) problems.push(`not generated from proto/: gen/src/${path}`);
  if (problems.length > 0) {
    console.error(`gen/ does not match proto/; run \`npm run generate\` and commit:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`gen/ is up to date (${fresh.size} files)`);
} finally {
  await rm(scratch, { recursive: true, force: true });
}

async function files(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(dir, path), await readFile(path, "utf8"));
  }
  return out;
}
