// otto.v1 as last released: an image of its protos (`buf build`), checked in
// at proto/released/otto-v1.binpb. `npm run check` compares proto/ with it
// (`buf breaking`, FILE rules: adding fields, methods and services is fine;
// removing or renaming them, or changing a field's type or number, is not),
// so a breaking change to otto.v1 fails the suite unless it goes into a new
// version. `npm run release:contract` makes the image anew when a release
// is cut, on purpose.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { bufPath } from "./buf.ts";

const root = join(import.meta.dirname, "..");
export const releasedImage = join(root, "proto/released/otto-v1.binpb");

// What `buf breaking` says of otto.v1 in `workspace` (a directory with
// buf.yaml and proto/, like the repository's root) against the released
// image: empty when nothing breaks.
export function breakingChanges(workspace = root, against = releasedImage): string {
  const result = spawnSync(bufPath(), ["breaking", "proto", "--against", against], { cwd: workspace, encoding: "utf8" });
  if (result.status === 0) return "";
  return (result.stdout + result.stderr).trim() || `buf breaking exited with ${result.status}`;
}

if (import.meta.main) {
  if (process.argv[2] === "cut") {
    const result = spawnSync(bufPath(), ["build", "proto", "--path", "proto/otto/v1", "-o", releasedImage], { cwd: root, stdio: "inherit" });
    if (result.status !== 0) process.exit(result.status ?? 1);
    console.log(`otto.v1 released as ${releasedImage}`);
  } else {
    const problems = breakingChanges();
    if (problems) {
      console.error(`otto.v1 changed in a way that breaks its released contract (proto/released/otto-v1.binpb):\n${problems}\n` +
        "Put the change in a new version (otto.v2), or, when cutting a release on purpose, run `npm run release:contract`.");
      process.exit(1);
    }
    console.log("otto.v1 keeps its released contract");
  }
}
