// The agent as a build host gets it: `npm pack` of @otto/agent, a plain
// `npm install` of the tarball into a project outside this repository
// (which builds its native step launcher), and its `otto-agent` bin with the
// public URL, the CA and a join token: it joins a live Otto, runs a job
// asking for its label in a sandbox, and stops on SIGTERM.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { RunState, TokenKind, pipeline, readLogLines, submitAndWait } from "@otto/sdk";
import { startTestOtto, waitFor, type TestOtto } from "./helpers/otto.ts";
import { installedProject, pack, run, succeeded, userEnv } from "./helpers/outside-project.ts";

describe("the agent package, installed on a build host", () => {
  let otto: TestOtto;
  const dirs: string[] = [];

  before(async () => (otto = await startTestOtto({ agents: 1 })));
  after(async () => {
    await otto?.stopAndClean();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("installs from its tarball, joins with a join token, runs a sandboxed job, and stops on SIGTERM", async () => {
    const made = await pack(["@otto/agent"]);
    dirs.push(made.dir);
    assert.deepEqual(made.tarballs.map((t) => basename(t)), ["otto-agent-0.1.0.tgz"]);
    const listing = succeeded("tar", await run("tar", ["tzf", made.tarballs[0]], { cwd: made.dir, env: userEnv() })).stdout.trim().split("\n");
    assert.ok(!listing.some((path) => /\/src\/|\.ts$/.test(path)), `no TypeScript sources: ${listing.join(" ")}`);
    const project = await installedProject(made.tarballs, userEnv());
    dirs.push(project);
    assert.ok(existsSync(join(project, "node_modules/@otto/agent/native/build/step-launcher")), "installing built the native step launcher");

    const work = await mkdtemp(join(tmpdir(), "otto-packed-agent-"));
    dirs.push(work);
    const { token: joinToken } = await otto.client.admin.createToken({ kind: TokenKind.JOIN, name: "packed agent" });
    // The package's bin, as `npx otto-agent` finds it (run directly, so that
    // SIGTERM reaches the agent itself rather than npx).
    const agent = spawn(
      join(project, "node_modules/.bin/otto-agent"),
      ["--url", otto.gatewayUrl, "--ca", otto.caFile!, "--join-token", joinToken, "--labels", "packed-agent", "--slots", "1", "--work-dir", work, "--id", "packed-1"],
      { cwd: project, env: userEnv(), stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    agent.stdout!.setEncoding("utf8").on("data", (text: string) => (output += text));
    agent.stderr!.setEncoding("utf8").on("data", (text: string) => (output += text));
    const exited = new Promise<number | null>((resolve) => agent.on("exit", resolve));
    try {
      await waitFor("the packed agent to be ready", () => output.includes('"agent ready"') || agent.exitCode !== null, 60_000);
      assert.equal(agent.exitCode, null, output);
      assert.match(output, /"sandbox":"on"/);
      const run = await submitAndWait(otto.client, pipeline("from-the-package").job("there", { runsOn: ["packed-agent"], steps: ["echo ran by the packed agent as $(id -u)"] }).build());
      const lines: string[] = [];
      for await (const line of readLogLines(otto.client, run.id, "there", { raw: true })) lines.push(line.text);
      assert.equal(run.state, RunState.SUCCEEDED, lines.join("\n"));
      assert.equal(run.jobs[0].agentId, "packed-1");
      assert.ok(lines.includes("ran by the packed agent as 65534"), lines.join("\n"));
    } finally {
      agent.kill("SIGTERM");
      const timer = setTimeout(() => agent.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(timer);
    }
    assert.equal(await exited, 0, output);
    assert.ok(existsSync(join(work, "credential")), "it kept its credential in its work directory for its next start");
  });
});
