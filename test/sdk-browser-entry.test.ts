// The SDK's browser entry, picked by the "browser" export condition, bundles
// for a browser (esbuild) with no Node built-in in it; the Node entry would
// not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { build } from "esbuild";

const root = join(import.meta.dirname, "..");

function bundleForBrowser(contents: string) {
  return build({
    stdin: { contents, resolveDir: root, loader: "ts" },
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    conditions: ["otto-source"],
    logLevel: "silent",
  });
}

test("@otto/sdk bundles for a browser through its browser entry, without Node built-ins", async () => {
  const result = await bundleForBrowser(`export { createOttoClient, pipeline, followLogs, submitAndWait, RunState } from "@otto/sdk";`);
  const code = result.outputFiles[0]!.text;
  assert.match(code, /connect-web|createConnectTransport/);
  assert.doesNotMatch(code, /from\s*["']node:/);
  assert.ok(!code.includes("@connectrpc/connect-node"), "the Node transport is left out");
});

test("the Node entry, bundled for a browser, fails on its Node built-ins", async () => {
  await assert.rejects(bundleForBrowser(`export * from "./sdk/src/index.ts";`), /node:fs|connect-node|Could not resolve/);
});
