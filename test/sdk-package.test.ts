// The SDK as another tool gets it: `npm pack` makes tarballs of @otto/sdk and
// the workspace packages it depends on, a project outside this repository
// installs them with a plain `npm install`, and against a live Otto a plain
// .mjs consumer (on Node 24 and Node 22) submits a pipeline built with the
// builder, waits for it and follows its log; a .ts consumer type-checks under
// strict with no @types/node; `npx otto runs` lists the run; and the browser
// entry bundles from node_modules without Node built-ins.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { build } from "esbuild";
import { RunState } from "@otto/sdk";
import { startTestOtto, type TestOtto } from "./helpers/otto.ts";
import { installedProject, pack, run, succeeded, userEnv } from "./helpers/outside-project.ts";

const repoRoot = join(import.meta.dirname, "..");
const packages = ["@otto/gen", "@otto/contracts", "@otto/sdk"];

const consumerMjs = `
import { createOttoClient, followLogs, pipeline, runStateName, submitAndWait } from "@otto/sdk";

const client = createOttoClient();
const major = process.versions.node.split(".")[0];
const built = pipeline("packed-sdk").job("build", { steps: ["echo packed sdk on node " + major] }).build();
const run = await submitAndWait(client, built);
console.log("state " + runStateName(run.state));
for await (const line of followLogs(client, run.id, "build", { follow: false })) console.log("log " + line);
`;

const consumerTs = `
import { createOttoClient, followLogs, pipeline, RunState, submitAndWait, type OttoClient, type Run } from "@otto/sdk";

export async function buildAndShow(url: string, token: string): Promise<string[]> {
  const client: OttoClient = createOttoClient({ baseUrl: url, token });
  const run: Run = await submitAndWait(client, pipeline("typed").job("test", { steps: [{ run: "npm test", timeout: "10m" }] }).build());
  const lines: string[] = [];
  if (run.state === RunState.SUCCEEDED) for await (const line of followLogs(client, run.id, "test")) lines.push(line);
  const runs = await client.runs.listRuns({ pageSize: 5 });
  return [...lines, ...runs.runs.map((r) => r.id)];
}
`;

describe("the packed SDK in a project outside the repository", () => {
  let otto: TestOtto;
  let packs: string;
  let project: string;
  let node22: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    node22 = await mkdtemp(join(tmpdir(), "otto-node22-"));
    otto = await startTestOtto();
    assert.ok(otto.adminToken && otto.caFile, "the test Otto has an admin token and a CA");
    env = userEnv({ OTTO_URL: otto.gatewayUrl, OTTO_TOKEN: otto.adminToken, OTTO_CA_FILE: otto.caFile });
  });

  after(async () => {
    await otto?.stopAndClean();
    for (const dir of [packs, project, node22]) if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("packs, installs with a plain npm install, and runs with no build step", async () => {
    const made = await pack(packages);
    packs = made.dir;
    assert.deepEqual(made.tarballs.map((t) => basename(t)), ["otto-contracts-0.1.0.tgz", "otto-gen-0.1.0.tgz", "otto-sdk-0.1.0.tgz"]);
    for (const tarball of made.tarballs) {
      const listing = succeeded(`tar ${tarball}`, await run("tar", ["tzf", tarball], { cwd: packs, env: userEnv() })).stdout.trim().split("\n");
      const strays = listing.filter((path) => !/^package\/(package\.json|(dist|bin)\/.+\.(js|d\.ts))$/.test(path) && !/^package\/README/.test(path));
      assert.deepEqual(strays, [], `${basename(tarball)} ships compiled modules and declarations only`);
    }
    project = await installedProject(made.tarballs, env);
    await writeFile(join(project, "consumer.mjs"), consumerMjs);

    const on24 = succeeded("the consumer on Node 24", await run(process.execPath, ["consumer.mjs"], { cwd: project, env }));
    assert.match(on24.stdout, /^state SUCCEEDED$/m);
    assert.match(on24.stdout, /^log .*packed sdk on node 24$/m);

    await writeFile(join(node22, "package.json"), JSON.stringify({ name: "node22", private: true, allowScripts: { node: true } }));
    succeeded("installing Node 22", await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "node@22"], { cwd: node22, env }));
    const node22Binary = join(node22, "node_modules/.bin/node");
    assert.match(succeeded("node --version", await run(node22Binary, ["--version"], { cwd: project, env })).stdout, /^v22\./);
    const on22 = succeeded("the consumer on Node 22", await run(node22Binary, ["consumer.mjs"], { cwd: project, env }));
    assert.match(on22.stdout, /^state SUCCEEDED$/m);
    assert.match(on22.stdout, /^log .*packed sdk on node 22$/m);

    const runs = await otto.client.runs.listRuns({ pageSize: 10 });
    const packed = runs.runs.filter((r) => r.name === "packed-sdk");
    assert.equal(packed.length, 2, "both consumers' runs are in Otto");
    assert.ok(packed.every((r) => r.state === RunState.SUCCEEDED));

    const listed = succeeded("npx otto runs", await run("npx", ["otto", "runs"], { cwd: project, env }));
    for (const r of packed) assert.ok(listed.stdout.includes(r.id), `npx otto runs lists ${r.id}:\n${listed.stdout}`);
  });

  it("type-checks a .ts consumer under strict, without @types/node", async () => {
    await writeFile(join(project, "consumer.ts"), consumerTs);
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "es2022", module: "nodenext", moduleResolution: "nodenext", strict: true, noEmit: true, types: [] }, files: ["consumer.ts"] }),
    );
    const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
    succeeded("tsc --noEmit", await run(process.execPath, [tsc, "--noEmit", "-p", "tsconfig.json"], { cwd: project, env }));

    await writeFile(join(project, "wrong.ts"), `import { pipeline } from "@otto/sdk";\nconst n: number = pipeline("x").build().name;\n`);
    await writeFile(join(project, "tsconfig.wrong.json"), JSON.stringify({ extends: "./tsconfig.json", files: ["wrong.ts"] }));
    const wrong = await run(process.execPath, [tsc, "--noEmit", "-p", "tsconfig.wrong.json"], { cwd: project, env });
    assert.notEqual(wrong.code, 0, "the declarations are real types: a string is not a number");
    assert.match(wrong.stdout, /wrong\.ts.*TS2322/);
  });

  it("bundles the installed browser entry for a browser, without Node built-ins", async () => {
    const result = await build({
      stdin: { contents: `export { createOttoClient, pipeline, followLogs, submitAndWait, RunState } from "@otto/sdk";`, resolveDir: project, loader: "js" },
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      logLevel: "silent",
    });
    const code = result.outputFiles[0]!.text;
    assert.match(code, /createConnectTransport/);
    assert.doesNotMatch(code, /from\s*["']node:/);
    assert.ok(!code.includes("connect-node"), "the Node transport is left out");
  });
});
