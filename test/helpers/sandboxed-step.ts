// Runs one sandboxed step through the native launcher and prints its outcome
// and lines as JSON: for tests that run it as another (unprivileged) user.
// Usage: node sandboxed-step.ts WORK_ROOT SCRIPT
import { StepLauncher } from "@otto/agent/step-launcher";
import { runStepProcess } from "@otto/agent/step-process";
import { makeJobDirectory, sandboxPath, type SandboxSettings } from "@otto/agent/step-sandbox";

const [workRoot, script] = process.argv.slice(2);
const settings: SandboxSettings = { uid: 65534, gid: 65534, expose: [], share: [] };
const launcher = new StepLauncher("native", settings);
const job = await makeJobDirectory(workRoot, settings);
let output = "";
const outcome = await runStepProcess(
  {
    script,
    cwd: job.launchDirectory,
    env: { PATH: sandboxPath, ...job.env },
    timeoutMs: 30_000,
    cancel: new AbortController().signal,
    onOutput: (text) => void (output += text.toString("utf8")),
  },
  launcher,
);
launcher.stop();
const lines = output.split("\n").slice(0, -1);
console.log(JSON.stringify({ outcome, lines, workspace: job.workspace }));
