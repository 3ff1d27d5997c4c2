import { rm } from "node:fs/promises";
import type { StepLauncher } from "./step-launcher.ts";
import { runStepProcess } from "./step-process.ts";
import { makeJobDirectory, sandboxPath } from "./step-sandbox.ts";

// Why this host cannot run sandboxed steps, or undefined when it can: one
// step is run through the launcher as every step will be, and checks that it
// is the steps' user and that its workspace is writable.
export async function sandboxProblem(launcher: StepLauncher, workRoot: string): Promise<string | undefined> {
  const sandbox = launcher.sandbox;
  if (!sandbox) return undefined;
  const job = await makeJobDirectory(workRoot, sandbox);
  try {
    let output = "";
    const outcome = await runStepProcess(
      {
        script: `test "$(id -u):$(id -g)" = "${sandbox.uid}:${sandbox.gid}" || { echo "runs as $(id -u):$(id -g)"; exit 1; }; touch "$OTTO_WORKSPACE/probe"`,
        cwd: job.launchDirectory,
        env: { PATH: sandboxPath, ...job.env },
        timeoutMs: 30_000,
        cancel: new AbortController().signal,
        onOutput: (text) => void (output += text.toString("utf8")),
      },
      launcher,
    );
    if (outcome.kind === "exited" && outcome.exitCode === 0) return undefined;
    return `a sandboxed probe step failed (${outcome.kind}, exit code ${outcome.exitCode}): ${output.trim().split("\n").join(" / ") || "no output"}`;
  } finally {
    await rm(job.root, { recursive: true, force: true });
  }
}
