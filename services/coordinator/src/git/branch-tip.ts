import { Code, ConnectError } from "@connectrpc/connect";
import { isCommitId } from "./commit-id.ts";
import { gitEnvironment } from "./git-environment.ts";
import { runGit } from "./run-git.ts";

// The commit at the tip of a branch of a repository (git ls-remote), for a
// run started by hand or by a schedule. The branch name has been checked
// against git's rules by the caller.
export async function branchTip(options: { repoUrl: string; branch: string; cacheDir: string; timeoutMs?: number }): Promise<string> {
  const ref = `refs/heads/${options.branch}`;
  const outcome = await runGit(["ls-remote", "--", options.repoUrl, ref], {
    env: gitEnvironment(options.cacheDir, []),
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    maxStdoutBytes: 64 * 1024,
  }).catch((err: Error) => {
    throw new ConnectError(`could not ask ${options.repoUrl} for branch ${options.branch}: ${err.message}`, Code.Unavailable);
  });
  if (outcome.code !== 0) {
    throw new ConnectError(`could not ask ${options.repoUrl} for branch ${options.branch}: ${outcome.stderr.trim().split("\n").slice(-2).join(" ")}`, Code.FailedPrecondition);
  }
  for (const line of outcome.stdout.toString("utf8").split("\n")) {
    const [sha, name] = line.split("\t");
    if (name === ref && isCommitId(sha)) return sha;
  }
  throw new ConnectError(`${options.repoUrl} has no branch ${options.branch}`, Code.NotFound);
}
