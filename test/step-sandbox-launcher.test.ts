// The native step launcher's sandbox, driven directly (no Otto processes):
// what a step sees, what it may write, and that nothing it starts outlives it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { chmod, chown, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chooseLauncher, StepLauncher } from "@otto/agent/step-launcher";
import { runStepProcess } from "@otto/agent/step-process";
import { makeJobDirectory, sandboxPath, type JobDirectory, type SandboxSettings } from "@otto/agent/step-sandbox";
import { reachable } from "@otto/launcher/postgres-reach";
import { hostPidsRunning } from "./helpers/host-processes.ts";
import { isAlive, waitFor } from "./helpers/otto.ts";
import { collectLines } from "./helpers/output-lines.ts";

const cannot =
  process.getuid?.() !== 0 ? "sandboxing needs root" : chooseLauncher("auto").kind !== "native" ? "the native launcher is not built" : false;

describe("sandboxed native step launcher", { skip: cannot }, () => {
  let dir: string;
  let exposed: string;
  let shared: string;
  let settings: SandboxSettings;
  let launcher: StepLauncher;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "otto-sandbox-"));
    exposed = await mkdtemp(join(tmpdir(), "otto-sandbox-exposed-"));
    shared = await mkdtemp(join(tmpdir(), "otto-sandbox-shared-"));
    await writeFile(join(exposed, "tool"), "a tool\n");
    await chmod(exposed, 0o755);
    await chmod(shared, 0o777);
    await writeFile(join(dir, "admin.token"), "otto_api_secret\n", { mode: 0o600 });
    settings = { uid: 65534, gid: 65534, expose: [{ from: exposed, to: "/opt/tools" }], share: [{ from: shared, to: "/shared" }] };
    launcher = new StepLauncher("native", settings);
  });
  after(async () => {
    launcher?.stop();
    for (const path of [dir, exposed, shared]) if (path) await rm(path, { recursive: true, force: true });
  });

  async function run(script: string, options: { job?: JobDirectory; cancel?: AbortSignal; through?: StepLauncher } = {}) {
    const job = options.job ?? (await makeJobDirectory(join(dir, "work"), settings));
    const lines: string[] = [];
    const outcome = await runStepProcess(
      {
        script,
        cwd: job.launchDirectory,
        env: { PATH: sandboxPath, ...job.env },
        timeoutMs: 0,
        cancel: options.cancel ?? new AbortController().signal,
        onOutput: collectLines(lines),
      },
      options.through ?? launcher,
    );
    return { outcome, lines, job };
  }

  // A step's `sleep` with a command line no other process has, and its host pid.
  async function sleepOf(step: Promise<unknown>, marker: string) {
    const pid = await waitFor("the step's sleep to start", () => hostPidsRunning(["sleep", marker])[0]);
    return { step, pid };
  }

  it("runs as the steps' user in /workspace, with its own HOME and TMPDIR, and sees only its own processes", async () => {
    const { outcome, lines } = await run('id -u; id -g; id -G; pwd; echo "$HOME $TMPDIR"; ls /proc | grep -c "^[0-9]"; cat /proc/1/comm');
    assert.deepEqual(outcome, { kind: "exited", exitCode: 0 });
    const [uid, gid, groups, cwd, places, processes, init] = lines;
    assert.deepEqual([uid, gid, groups, cwd, places, init], ["65534", "65534", "65534", "/workspace", "/home/otto /tmp", "otto-step-init"]);
    assert.ok(Number(processes) <= 5, `the step sees ${processes} processes: its init, shell and pipeline only`);
    assert.ok(!lines.includes(String(process.pid)));
  });

  it("sees none of the host's files but the system's, and may write only its workspace, home, tmp and shares", async () => {
    const script = [
      `for path in "${dir}" "${dir}/admin.token" /root /work /var /proc/1/root/${dir.slice(1)}; do [ -e "$path" ] && echo "sees $path"; done`,
      "for path in /workspace/w /home/otto/h /tmp/t /dev/shm/s /shared/s; do echo x > \"$path\" && echo \"wrote $path\"; done",
      "for path in /etc/e /usr/u /x /opt/tools/x /sys/x /proc/x /dev/x; do (echo x > \"$path\") 2>/dev/null && echo \"wrote $path\"; done",
      "cat /opt/tools/tool",
      "ls /sys/kernel >/dev/null && echo reads sys",
      "true",
    ].join("\n");
    const { outcome, lines, job } = await run(script);
    assert.deepEqual(outcome, { kind: "exited", exitCode: 0 }, lines.join("\n"));
    assert.deepEqual(lines, [
      "wrote /workspace/w",
      "wrote /home/otto/h",
      "wrote /tmp/t",
      "wrote /dev/shm/s",
      "wrote /shared/s",
      "a tool",
      "reads sys",
    ]);
    const written = await stat(join(job.workspace, "w"));
    assert.deepEqual([written.uid, written.gid], [65534, 65534], "the workspace's files are the step user's");
    assert.equal(await readFile(join(shared, "s"), "utf8"), "x\n");
  });

  it("holds no capabilities and no way back to root: no_new_privs is set, so set-user-id programs do not elevate it", async () => {
    const { lines } = await run("grep -E '^(NoNewPrivs|CapInh|CapPrm|CapEff|CapAmb)' /proc/self/status | tr -s '\\t ' ' '");
    assert.deepEqual(lines, ["CapInh: 0000000000000000", "CapPrm: 0000000000000000", "CapEff: 0000000000000000", "CapAmb: 0000000000000000", "NoNewPrivs: 1"]);
  });

  it("reports exit codes and a shell killed by a signal", async () => {
    assert.deepEqual((await run("exit 42")).outcome, { kind: "exited", exitCode: 42 });
    assert.deepEqual((await run("kill -KILL $$")).outcome, { kind: "exited", exitCode: -1 });
  });

  it("kills what a step leaves behind, even in a session of its own, when its shell ends", async () => {
    const marker = `1000.${randomBytes(3).readUIntBE(0, 3)}`;
    const step = run(`setsid sleep ${marker} >/dev/null 2>&1 & while [ ! -e /shared/${marker} ]; do sleep 0.01; done`);
    const { pid } = await sleepOf(step, marker);
    await writeFile(join(shared, marker), "");
    const { outcome } = await step;
    assert.equal(outcome.exitCode, 0);
    await waitFor("the step's leftover sleep to be killed", () => !isAlive(pid), 5_000);
  });

  it("a cancel reaches the step's processes through its init", async () => {
    const marker = `1000.${randomBytes(3).readUIntBE(0, 3)}`;
    const cancel = new AbortController();
    const step = run(`trap 'echo got TERM; exit 7' TERM; sleep ${marker} & wait`, { cancel: cancel.signal });
    const { pid } = await sleepOf(step, marker);
    cancel.abort();
    const { outcome, lines } = await step;
    assert.deepEqual(outcome, { kind: "canceled", exitCode: 7 });
    assert.deepEqual(lines, ["got TERM"]);
    await waitFor("the canceled step's sleep to die", () => !isAlive(pid), 5_000);
  });

  it("when the launcher is killed, its sandboxed steps die with it", async () => {
    const own = new StepLauncher("native", settings);
    const marker = `1000.${randomBytes(3).readUIntBE(0, 3)}`;
    const step = run(`sleep ${marker}`, { through: own });
    const { pid } = await sleepOf(step, marker);
    process.kill(own.pid!, "SIGKILL");
    const { outcome } = await step;
    assert.deepEqual(outcome, { kind: "exited", exitCode: -1 });
    await waitFor("the orphaned step's sleep to die", () => !isAlive(pid), 5_000);
    own.stop();
  });

  it("follows no link a step planted on the way to an operator's share inside its own places", async () => {
    const victim = await mkdtemp(join(tmpdir(), "otto-sandbox-victim-"));
    const cache = await mkdtemp(join(tmpdir(), "otto-sandbox-cache-"));
    await chmod(cache, 0o777);
    const own = new StepLauncher("native", { ...settings, share: [{ from: cache, to: "/tmp/cache/npm" }] });
    try {
      const job = await makeJobDirectory(join(dir, "work"), own.sandbox);
      const first = await run(`mv /tmp/cache /tmp/moved && ln -s "${victim}" /tmp/cache && echo planted`, { job, through: own });
      assert.deepEqual(first.lines, ["planted"]);
      const second = await run("echo unreachable", { job, through: own });
      assert.deepEqual(second.outcome, { kind: "exited", exitCode: 127 });
      assert.match(second.lines.join("\n"), /cannot sandbox the step: a mount point through a symbolic link/);
      assert.deepEqual(await readdir(victim), [], "nothing was made where the link points");
    } finally {
      own.stop();
      for (const path of [victim, cache]) await rm(path, { recursive: true, force: true });
    }
  });

  it("without root, gives each step a user namespace of its own, in which the agent's user is the steps' user", async (t) => {
    // It runs this checkout's code as uid 1000, which a checkout in a 0700 directory keeps out.
    if (!(await reachable(join(import.meta.dirname, "helpers", "sandboxed-step.ts"), { uid: 1000, gid: 1000 }))) {
      return t.skip("uid 1000 cannot reach this checkout");
    }
    const work = await mkdtemp(join(tmpdir(), "otto-sandbox-rootless-"));
    await chown(work, 1000, 1000);
    try {
      const script = `id -u; id -g; ls /proc | grep -c '^[0-9]'; echo made > /workspace/out; [ -e "${dir}" ] && echo "sees the host"; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t ' ' '`;
      const child = spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", "test/helpers/sandboxed-step.ts", join(work, "w"), script], {
        uid: 1000,
        gid: 1000,
        encoding: "utf8",
      });
      assert.equal(child.status, 0, child.stderr);
      const { outcome, lines, workspace } = JSON.parse(child.stdout);
      assert.deepEqual(outcome, { kind: "exited", exitCode: 0 }, lines.join("\n"));
      const [uid, gid, processes, ...rest] = lines;
      assert.deepEqual([uid, gid], ["65534", "65534"]);
      assert.ok(Number(processes) <= 5, `the step sees ${processes} processes`);
      assert.deepEqual(rest, ["CapEff: 0000000000000000", "NoNewPrivs: 1"]);
      const made = await stat(join(workspace, "out"));
      assert.deepEqual([made.uid, made.gid], [1000, 1000], "on the host, the step's files are the agent's user's");
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it("a sandbox that cannot be made fails its step with the reason", async () => {
    const job = await makeJobDirectory(join(dir, "work"), settings);
    await rm(job.workspace, { recursive: true });
    const { outcome, lines } = await run("echo unreachable", { job });
    assert.deepEqual(outcome, { kind: "exited", exitCode: 127 });
    assert.match(lines.join("\n"), /cannot sandbox the step: .*workspace: No such file or directory/);
  });
});
