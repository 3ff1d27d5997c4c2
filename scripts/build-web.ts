// Builds the web UI (web/src) into web/assets, which is checked in and which
// the gateway serves: index.html and, under ui/, the bundle and its styles
// with their content's hash in their names. With --check, builds into memory
// and fails when web/assets differs (as check-generated.ts does for gen/).
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";

const root = join(import.meta.dirname, "..");
const web = join(root, "web");
const assets = join(web, "assets");

async function buildAssets(): Promise<Map<string, Uint8Array>> {
  const result = await build({
    absWorkingDir: root,
    entryPoints: { app: join(web, "src", "main.tsx") },
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    // The SDK's browser entry, from the workspace's TypeScript sources.
    conditions: ["otto-source"],
    jsx: "automatic",
    jsxImportSource: "preact",
    tsconfig: join(web, "tsconfig.json"),
    define: { "process.env.NODE_ENV": '"production"' },
    outdir: assets,
    entryNames: "ui/[name]-[hash]",
    assetNames: "ui/[name]-[hash]",
    legalComments: "eof",
    write: false,
    logLevel: "warning",
  });
  const files = new Map<string, Uint8Array>();
  for (const file of result.outputFiles) files.set(relative(assets, file.path), file.contents);
  const named = (ext: string) => [...files.keys()].find((path) => path.startsWith("ui/app-") && path.endsWith(ext));
  const js = named(".js");
  const css = named(".css");
  if (!js || !css) throw new Error(`the build made no bundle and styles: ${[...files.keys()].join(", ")}`);
  const page = (await readFile(join(web, "src", "index.html"), "utf8")).replace("{{js}}", `/${js}`).replace("{{css}}", `/${css}`);
  files.set("index.html", new TextEncoder().encode(page));
  return files;
}

async function onDisk(): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const entries = await readdir(assets, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) if (entry.isFile()) files.set(relative(assets, join(entry.parentPath, entry.name)), await readFile(join(entry.parentPath, entry.name)));
  return files;
}

const fresh = await buildAssets();
if (process.argv.includes("--check")) {
  const checkedIn = await onDisk();
  const problems: string[] = [];
  for (const [path, bytes] of fresh) {
    const old = checkedIn.get(path);
    if (!old) problems.push(`missing from web/assets: ${path}`);
    else if (!old.equals(bytes)) problems.push(`out of date: web/assets/${path}`);
  }
  for (const path of checkedIn.keys()) if (!fresh.has(path)) problems.push(`not built from web/src: web/assets/${path}`);
  if (problems.length > 0) {
    console.error(`web/assets does not match web/src (or the gen/, contracts/ and sdk/ sources it bundles); run \`npm run build:web\` (\`npm run generate\` runs it too) and commit:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log(`web/assets is up to date (${fresh.size} files)`);
} else {
  await rm(assets, { recursive: true, force: true });
  for (const [path, bytes] of fresh) {
    await mkdir(dirname(join(assets, path)), { recursive: true });
    await writeFile(join(assets, path), bytes);
  }
  for (const [path, bytes] of fresh) console.log(`web/assets/${path} (${Math.round(bytes.length / 1024)} KiB)`);
}
