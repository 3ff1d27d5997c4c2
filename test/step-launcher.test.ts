// The agent's two step launchers (native and JavaScript, one protocol) run
// real shells: each case below runs against both.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chooseLauncher, StepLauncher, type LauncherKind } from "@otto/agent/step-launcher";
import { runStepProcess, type StepOutcome } from "@otto/agent/step-process";
import { maxLineLength } from "@otto/agent/output-text";
import { isAlive, waitFor } from "./helpers/otto.ts";
import { collectLines } from "./helpers/output-lines.ts";

const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

describe("step launcher", () => {
  it("the native launcher is built and chosen wherever there is a C compiler", (t) => {
    if (spawnSync(process.env.CC ?? "cc", ["--version"]).status !== 0) return t.skip("no C compiler here");
    assert.deepEqual(chooseLauncher("auto"), { kind: "native" });
  });

  it("a native launcher that is missing, older than its source or of another protocol is passed over, or refused if insisted on", async () => {
    const dir = await mkdtemp(join(tmpdir(), "otto-launcher-choice-"));
    try {
      const native = { binary: join(dir, "step-launcher"), sources: [join(dir, "step-launcher.c"), join(dir, "sandbox.c")] };
      for (const source of native.sources) await writeFile(source, "/* the source */\n");
      const passedOver = (why: RegExp) => {
        const chosen = chooseLauncher("auto", native);
        assert.equal(chosen.kind, "javascript");
        assert.match(chosen.why ?? "", why);
        assert.throws(() => chooseLauncher("native", native), why);
      };
      passedOver(/the native step launcher is not built; `npm run build:launcher` builds it/);
      await writeFile(native.binary, "#!/bin/sh\necho 1\n", { mode: 0o755 });
      passedOver(/does not speak protocol 3/);
      const past = new Date(Date.now() - 60_000);
      await utimes(native.binary, past, past);
      passedOver(/is older than its source/);
      assert.deepEqual(chooseLauncher("javascript", native), { kind: "javascript" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

for (const kind of ["native", "javascript"] as LauncherKind[]) {
  const unbuilt = kind === "native" && chooseLauncher("auto").kind !== "native";
  describe(`${kind} step launcher`, { skip: unbuilt && "the native launcher is not built" }, () => {
    let launcher: StepLauncher;
    let dir: string;

    before(async () => {
      launcher = new StepLauncher(kind);
      dir = await mkdtemp(join(tmpdir(), "otto-launcher-"));
    });
    after(async () => {
      launcher?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    interface RunOptions {
      cancel?: AbortSignal;
      timeoutMs?: number;
      cwd?: string;
      env?: Record<string, string>;
      through?: StepLauncher;
    }

    async function run(script: string, options: RunOptions = {}) {
      const lines: string[] = [];
      const outcome = await runStepProcess(
        {
          script,
          cwd: options.cwd ?? dir,
          env: { ...env, ...options.env },
          timeoutMs: options.timeoutMs ?? 0,
          cancel: options.cancel ?? new AbortController().signal,
          onOutput: collectLines(lines),
        },
        options.through ?? launcher,
      );
      return { outcome, lines };
    }

    // A step that waits for a `sleep 30` of its own, once that sleep runs.
    async function sleeper(name: string, options: RunOptions = {}) {
      const pidFile = join(dir, `${name}-pid`);
      const step = run(`sleep 30 & echo $! > "${pidFile}"; wait`, options);
      const pid = await waitFor("the sleep to start", async () => Number(await readFile(pidFile, "utf8").catch(() => "")) || undefined);
      return { step, pid };
    }

    it("runs the script in its directory with its environment, passing on stdout and stderr", async () => {
      const { outcome, lines } = await run('echo "one $GREETING"; echo two >&2; pwd; echo three', { env: { GREETING: "hello" } });
      assert.deepEqual(outcome, { kind: "exited", exitCode: 0 } satisfies StepOutcome);
      // The native launcher gives both streams one pipe, so their lines keep
      // their order; Node gives them a pipe each.
      if (kind === "native") assert.deepEqual(lines, ["one hello", "two", dir, "three"]);
      else assert.deepEqual(lines.toSorted(), [dir, "one hello", "three", "two"]);
    });

    it("stops at the first failing command (sh -e) and reports its exit code", async () => {
      const failed = await run("echo before; false; echo after");
      assert.deepEqual(failed.outcome, { kind: "exited", exitCode: 1 });
      assert.deepEqual(failed.lines, ["before"]);
      assert.deepEqual((await run("exit 42")).outcome, { kind: "exited", exitCode: 42 });
    });

    it("passes on a last line without a newline (ending it), CRLF lines, redrawn lines and multi-byte characters", async () => {
      const { lines } = await run(String.raw`printf 'crlf\r\nprogress 1\rprogress 2\n'; printf 'h\303\251llo w\303\266rld ✓\n'; printf 'no newline'`);
      // Stored as printed: "\r" stays inside its line.
      assert.deepEqual(lines, ["crlf\r", "progress 1\rprogress 2", "héllo wörld ✓", "no newline"]);
    });

    it("leaves a step's output unread while the pressure is full, so the step waits on its pipe, and then passes all of it on", async () => {
      const pressure = new TogglePressure(true);
      const pidFile = join(dir, "seq-pid");
      const lines: string[] = [];
      const step = runStepProcess(
        {
          script: `seq 1 200000 & echo $! > "${pidFile}"; wait $!`,
          cwd: dir,
          env,
          timeoutMs: 0,
          cancel: new AbortController().signal,
          onOutput: collectLines(lines),
          pressure,
        },
        launcher,
      );
      const pid = await waitFor("seq to start", async () => Number(await readFile(pidFile, "utf8").catch(() => "")) || undefined);
      // A pipe natively; Node gives its children socket pairs.
      await waitFor("seq to wait on its full pipe", async () => /pipe_write|sock_alloc_send/.test(await readFile(`/proc/${pid}/wchan`, "utf8")));
      // What the pipes between the step and the agent hold, and no more (1.3 MB in all).
      assert.ok(lines.length < 40_000, `${lines.length} lines arrived while paused`);
      pressure.set(false);
      assert.deepEqual(await step, { kind: "exited", exitCode: 0 });
      assert.equal(lines.length, 200_000);
      assert.ok(lines.every((line, i) => line === String(i + 1)), "every line arrived once, in order");
    });

    it("ends a canceled step whose output stays unread, the pressure never easing", async () => {
      const cancel = new AbortController();
      const pidFile = join(dir, "stuck-seq-pid");
      const step = runStepProcess(
        {
          script: `seq 1 200000 & echo $! > "${pidFile}"; wait $!`,
          cwd: dir,
          env,
          timeoutMs: 0,
          cancel: cancel.signal,
          onOutput: () => {},
          pressure: new TogglePressure(true),
        },
        launcher,
      );
      const pid = await waitFor("seq to start", async () => Number(await readFile(pidFile, "utf8").catch(() => "")) || undefined);
      await waitFor("seq to wait on its full pipe", async () => /pipe_write|sock_alloc_send/.test(await readFile(`/proc/${pid}/wchan`, "utf8")));
      cancel.abort();
      assert.equal((await step).kind, "canceled");
    });

    it("passes on a megabyte of output, every line once and in order", async () => {
      const { outcome, lines } = await run("i=0; while [ $i -lt 20000 ]; do echo \"line $i of the output of this step, padded to about fifty bytes\"; i=$((i+1)); done");
      assert.equal(outcome.exitCode, 0);
      assert.equal(lines.length, 20000);
      assert.ok(lines.every((line, i) => line.startsWith(`line ${i} of`)), "every line arrived once, in order");
    });

    it("passes on a line longer than the longest it keeps whole in pieces", async () => {
      const length = maxLineLength + 1000;
      const { outcome, lines } = await run(`head -c ${length} /dev/zero | tr '\\0' a; echo; echo next`);
      assert.equal(outcome.exitCode, 0);
      assert.deepEqual(lines.map((line) => line.length), [maxLineLength, 1000, 4]);
      assert.equal(lines[2], "next");
    });

    it("keeps apart the output of steps that run at once", async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => run(`echo start ${i}; sleep 0.0$((${i} % 5)); echo end ${i}; exit ${i}`)));
      results.forEach(({ outcome, lines }, i) => {
        assert.deepEqual(outcome, { kind: "exited", exitCode: i });
        assert.deepEqual(lines, [`start ${i}`, `end ${i}`]);
      });
    });

    it("kills what a step leaves behind in its process group when its shell ends", async () => {
      const { outcome, lines } = await run("sleep 30 >/dev/null 2>&1 & echo $!");
      assert.equal(outcome.exitCode, 0);
      const pid = Number(lines[0]);
      await waitFor("the step's leftover sleep to be killed", () => !isAlive(pid), 5_000);
    });

    it("a cancel kills the step's whole process group", async () => {
      const cancel = new AbortController();
      const { step, pid } = await sleeper("cancel", { cancel: cancel.signal });
      assert.ok(isAlive(pid));
      cancel.abort();
      const { outcome } = await step;
      assert.equal(outcome.kind, "canceled");
      await waitFor("the canceled step's sleep to die", () => !isAlive(pid), 5_000);
    });

    it("a step past its timeout is stopped as timed out", async () => {
      const started = Date.now();
      const { outcome } = await run("sleep 30", { timeoutMs: 300 });
      assert.equal(outcome.kind, "timed-out");
      assert.ok(Date.now() - started < 10_000, "stopped well before the sleep's end");
    });

    it("a step that cannot start exits with 127 and says why", async () => {
      const { outcome, lines } = await run("true", { cwd: join(dir, "missing") });
      assert.deepEqual(outcome, { kind: "exited", exitCode: 127 });
      assert.match(lines.join("\n"), /cannot start \/bin\/sh in .*missing/);
    });

    it("a NUL in a step's script or environment fails that step alone", async () => {
      const nulInEnv = await run("echo unreachable", { env: { BROKEN: "a\0b" } });
      assert.deepEqual(nulInEnv.outcome, { kind: "exited", exitCode: 127 });
      assert.deepEqual(nulInEnv.lines, ["cannot start /bin/sh: variable BROKEN contains a NUL character"]);
      const nulInScript = await run("echo a\0b");
      assert.deepEqual(nulInScript.lines, ["cannot start /bin/sh: its script contains a NUL character"]);
      assert.deepEqual(await run("echo still fine"), { outcome: { kind: "exited", exitCode: 0 }, lines: ["still fine"] });
    });

    it("when the launcher dies, its running steps are killed and end as killed, and the next step starts a new one", async () => {
      const own = new StepLauncher(kind);
      const { step, pid } = await sleeper("crash", { through: own });
      const first = own.pid!;
      process.kill(first, "SIGKILL");
      const { outcome, lines } = await step;
      assert.deepEqual(outcome, { kind: "exited", exitCode: -1 });
      assert.match(lines.join("\n"), /step launcher stopped; the step was killed/);
      await waitFor("the orphaned step's sleep to die", () => !isAlive(pid), 5_000);
      assert.deepEqual((await run("echo again", { through: own })).outcome, { kind: "exited", exitCode: 0 });
      assert.notEqual(own.pid, first);
      own.stop();
    });

    it("when the launcher's input ends, its running steps are killed and end as killed", async () => {
      const own = new StepLauncher(kind);
      const { step, pid } = await sleeper("stop", { through: own });
      own.stop();
      const { outcome } = await step;
      assert.equal(outcome.kind, "exited");
      assert.notEqual(outcome.exitCode, 0);
      await waitFor("the orphaned step's sleep to die", () => !isAlive(pid), 5_000);
    });
  });
}

// An output pressure the test sets.
class TogglePressure {
  full: boolean;
  #listeners = new Set<(full: boolean) => void>();
  constructor(full: boolean) {
    this.full = full;
  }
  watch(listener: (full: boolean) => void) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  set(full: boolean) {
    this.full = full;
    for (const listener of this.#listeners) listener(full);
  }
}
