// What a build step can reach, tried from real steps on a running Otto as an
// attacker holding only a runs:write token would: none of Otto's keys,
// tokens or credentials, no other process, no other run's secrets; while a
// build still has what it needs (its workspace, HOME, the network, the CLI).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, copyFile, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline, submitAndWait, RunState, type OttoClient } from "@otto/sdk";
import { startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

async function logOf(client: OttoClient, runId: string, job: string): Promise<string> {
  let log = "";
  for await (const chunk of client.logs.readLog({ runId, job })) log += chunk.text;
  return log;
}

// Every file under the data directory: its keys, tokens, credentials.
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

describe("sandboxed steps on a running Otto", { skip: process.getuid?.() !== 0 && "sandboxing needs root" }, () => {
  let otto: TestOtto;
  let shared: string;

  before(async () => {
    shared = await mkdtemp(join(tmpdir(), "otto-steps-shared-"));
    await chmod(shared, 0o777);
    otto = await startTestOtto({ agents: 1, agentSlots: 2, env: { OTTO_AGENT_SANDBOX_SHARE: `${shared}:/shared` } });
    await copyFile(otto.caFile!, join(shared, "ca.pem"));
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    if (shared) await rm(shared, { recursive: true, force: true });
  });

  it("a step that hunts for Otto's tokens, keys and credentials finds none of them", async () => {
    const secrets = (await filesUnder(otto.dataDir)).filter((f) => !f.includes("/postgres/") && !f.includes("/s3/"));
    assert.ok(secrets.some((f) => f.endsWith("admin.token")) && secrets.some((f) => f.endsWith("ca-key.pem")), "the data dir holds the usual keys");
    const joinToken = otto.supervisor.info().find((p) => p.name === "agent-1");
    assert.ok(joinToken, "agent-1 runs");
    const hunt = [
      `for f in ${secrets.map((f) => `"${f}"`).join(" ")} "${otto.dataDir}"; do [ -e "$f" ] && echo "FOUND $f"; done`,
      'cat "$OTTO_WORKSPACE/../../../admin.token" 2>/dev/null && echo "FOUND relative admin.token"',
      "find / -xdev \\( -name '*.token' -o -name '*key.pem' -o -name 'secrets.key' -o -name '*.credential' \\) 2>/dev/null | sed 's/^/FOUND /'",
      "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\"; done 2>/dev/null | grep -E '^(OTTO_AGENT_JOIN_TOKEN|DATABASE_URL|OTTO_S3_SECRET_KEY|OTTO_TLS_KEY)=' | sed 's/^/FOUND /'",
      "echo hunt over",
    ].join("\n");
    const run = await submitAndWait(otto.client, pipeline("hunt").job("hunt", { steps: [hunt] }).build());
    const log = await logOf(otto.client, run.id, "hunt");
    assert.equal(run.state, RunState.SUCCEEDED, log);
    assert.match(log, /hunt over/);
    assert.doesNotMatch(log, /\| FOUND /, log);
  });

  it("a step is not root, cannot see the agent, and may write only its own places", async () => {
    const agentPid = otto.supervisor.pid("agent-1")!;
    const script = [
      'echo "uid $(id -u)"',
      `[ -e /proc/${agentPid} ] && echo "sees the agent"`,
      "echo \"processes $(ls /proc | grep -c '^[0-9]')\"",
      '(echo x > /etc/otto) 2>/dev/null && echo "wrote /etc"',
      'echo x > "$OTTO_WORKSPACE/built" && echo x > "$HOME/.cache" && echo x > "$TMPDIR/t" && echo "wrote its own places"',
      "true",
    ].join("\n");
    const run = await submitAndWait(otto.client, pipeline("who").job("who", { steps: [script] }).build());
    const log = await logOf(otto.client, run.id, "who");
    assert.equal(run.state, RunState.SUCCEEDED, log);
    assert.match(log, /\| uid 65534$/m);
    assert.match(log, /\| wrote its own places$/m);
    assert.doesNotMatch(log, /\| (sees the agent|wrote \/etc)$/m);
    const processes = Number(/\| processes (\d+)$/m.exec(log)?.[1]);
    assert.ok(processes > 0 && processes <= 5, `the step sees ${processes} processes`);
  });

  it("a run without secrets cannot read the secrets of another run's step running beside it", async () => {
    const value = "d3ploy-Key-4711";
    await otto.client.admin.setSecret({ name: "DEPLOY_KEY", value });
    // The two steps wait for each other, so they surely run at the same time.
    const holder = pipeline("holder")
      .job("hold", { secrets: ["DEPLOY_KEY"], steps: [{ run: "touch /shared/holding; while [ ! -e /shared/looked ]; do sleep 0.05; done", timeout: "60s" }] })
      .build();
    const thief = pipeline("thief")
      .job("steal", {
        steps: [
          {
            run: [
              "while [ ! -e /shared/holding ]; do sleep 0.05; done",
              "for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\"; done 2>/dev/null | grep '^DEPLOY_KEY=' | sed 's/^/STOLEN /' || true",
              "echo looked; touch /shared/looked",
            ].join("\n"),
            timeout: "60s",
          },
        ],
      })
      .build();
    const [held, stolen] = await Promise.all([submitAndWait(otto.client, holder), submitAndWait(otto.client, thief)]);
    assert.equal(held.state, RunState.SUCCEEDED);
    assert.equal(stolen.state, RunState.SUCCEEDED);
    const log = await logOf(otto.client, stolen.id, "steal");
    assert.match(log, /\| looked$/m);
    assert.doesNotMatch(log, /\| STOLEN /, log);
    assert.ok(!log.includes(value), log);
  });

  it("a step has the otto CLI and its Node under /opt/otto, and the network", async () => {
    const script = [
      "/opt/otto/bin/node --version",
      `otto --url ${otto.gatewayUrl} --ca /shared/ca.pem runs 2>&1 || echo "otto exited $?"`,
    ].join("\n");
    const run = await submitAndWait(otto.client, pipeline("cli").job("cli", { steps: [script] }).build());
    const log = await logOf(otto.client, run.id, "cli");
    assert.equal(run.state, RunState.SUCCEEDED, log);
    assert.match(log, /\| v24\./);
    // It reached the gateway, which wants a token the step does not have.
    assert.match(log, /unauthenticated|token/i);
    assert.match(log, /otto exited [1-9]/);
  });
});

describe("an agent that cannot sandbox its steps", () => {
  const refusal = async (env: Record<string, string>) => {
    const work = await mkdtemp(join(tmpdir(), "otto-no-sandbox-"));
    try {
      const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--conditions=otto-source", "services/agent/src/main.ts"], {
        env: { PATH: process.env.PATH, OTTO_INSECURE: "1", OTTO_URL: "http://127.0.0.1:9", OTTO_AGENT_ID: "unsandboxable", OTTO_AGENT_WORK_DIR: join(work, "w"), ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (d) => (output += d));
      child.stderr.on("data", (d) => (output += d));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      return { code, output };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  };

  it("says why and refuses to start when a step's sandbox cannot be made, unless told OTTO_AGENT_SANDBOX=off", async () => {
    // A share that does not exist: no step's sandbox can be built.
    const { code, output } = await refusal({ OTTO_AGENT_SANDBOX_SHARE: "/nonexistent/otto-share" });
    assert.equal(code, 78, output);
    assert.match(output, /this host cannot sandbox steps: a sandboxed probe step failed .*cannot sandbox the step: \/nonexistent\/otto-share: No such file or directory/);
    assert.match(output, /OTTO_AGENT_SANDBOX=off/);
  });

  it("refuses a launcher that cannot sandbox", async () => {
    const { code, output } = await refusal({ OTTO_AGENT_STEP_LAUNCHER: "javascript" });
    assert.equal(code, 78, output);
    assert.match(output, /cannot sandbox steps: the JavaScript step launcher cannot sandbox steps; or set OTTO_AGENT_SANDBOX=off/);
  });
});

describe("an agent told OTTO_AGENT_SANDBOX=off", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_AGENT_SANDBOX: "off", OTTO_AGENT_STEP_LAUNCHER: "javascript" } });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("runs steps unsandboxed, as itself, with any launcher, and says so at start", async () => {
    const script = 'echo "uid $(id -u) in $OTTO_WORKSPACE"; test "$(pwd)" = "$OTTO_WORKSPACE"';
    const run = await submitAndWait(otto.client, pipeline("bare").job("bare", { steps: [script] }).build());
    const log = await logOf(otto.client, run.id, "bare");
    assert.equal(run.state, RunState.SUCCEEDED, log);
    assert.match(log, new RegExp(`\\| uid ${process.getuid?.()} in ${otto.dataDir}/agents/agent-1/slot-\\d+/workspace$`, "m"));
    assert.match(await tailOfLog(otto, 400), /steps are NOT sandboxed \(OTTO_AGENT_SANDBOX=off\)/);
  });
});
