import { spawn } from "node:child_process";

export interface GitOutcome {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunGitOptions {
  env: Record<string, string>;
  signal: AbortSignal;
  input?: string;
  // Output past this is dropped and git is stopped; the caller sees the cut output.
  maxStdoutBytes?: number;
}

const keptStderrChars = 64 * 1024;
const killGraceMs = 2_000;

// Runs git without a shell. When the signal aborts, git and everything it
// started (upload-pack, ssh, remote-https, index-pack) are stopped, and the
// promise rejects with the signal's reason only once they are gone, so the
// caller's lock on the cache repository outlives them.
export function runGit(args: string[], options: RunGitOptions): Promise<GitOutcome> {
  const { signal, maxStdoutBytes = Infinity } = options;
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    // Its own process group (and session, so no controlling terminal for ssh
    // to prompt on) to be stopped as one.
    const child = spawn("git", args, { env: options.env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    const chunks: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = "";
    let escalation: NodeJS.Timeout | undefined;

    // SIGTERM first: git then removes its lock files (shallow.lock, ref
    // locks), which a SIGKILL would leave behind to block every later fetch.
    const stop = () => {
      signalGroup("SIGTERM");
      escalation ??= setTimeout(() => signalGroup("SIGKILL"), killGraceMs);
    };
    const signalGroup = (name: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, name);
      } catch {
        // Already gone.
      }
    };
    signal.addEventListener("abort", stop, { once: true });

    child.stdout.on("data", (chunk: Buffer) => {
      const room = maxStdoutBytes - stdoutBytes;
      if (room <= 0) return;
      chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
      stdoutBytes += Math.min(chunk.length, room);
      if (chunk.length > room) stop();
    });
    child.stderr.setEncoding("utf8").on("data", (text: string) => {
      stderr = (stderr + text).slice(-keptStderrChars);
    });
    // git may exit before reading all of its input (a fatal error): not ours to report.
    child.stdin.on("error", () => {});
    child.stdin.end(options.input ?? "");

    child.on("error", (error) => {
      signal.removeEventListener("abort", stop);
      clearTimeout(escalation);
      reject(error);
    });
    child.on("close", (code) => {
      signal.removeEventListener("abort", stop);
      clearTimeout(escalation);
      if (signal.aborted) reject(signal.reason);
      else resolve({ code, stdout: Buffer.concat(chunks), stderr });
    });
  });
}
