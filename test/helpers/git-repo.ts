import { execFile } from "node:child_process";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const author = {
  GIT_AUTHOR_NAME: "Otto Test",
  GIT_AUTHOR_EMAIL: "test@otto.invalid",
  GIT_COMMITTER_NAME: "Otto Test",
  GIT_COMMITTER_EMAIL: "test@otto.invalid",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_CONFIG_NOSYSTEM: "1",
};

export interface TestRepo {
  // file:// URL of the bare repository.
  url: string;
  // Commits these files (path -> content; null deletes) on `branch` and
  // pushes; answers the commit's id.
  commit(files: Record<string, string | null>, message?: string, branch?: string): Promise<string>;
  remove(): Promise<void>;
}

// A real bare git repository at `dir/<owner>/<name>.git` (readable by
// everyone, so sandboxed steps can fetch from it), fed through a work clone.
export async function createTestRepo(dir: string, owner = "acme", name = "app"): Promise<TestRepo> {
  const bare = join(dir, owner, `${name}.git`);
  await mkdir(dirname(bare), { recursive: true, mode: 0o755 });
  const work = await mkdtemp(join(dir, "work-"));
  const git = (args: string[], cwd = work) => run("git", args, { cwd, env: { ...process.env, ...author } });
  await git(["init", "-q", "--bare", "--initial-branch=main", bare], dir);
  await git(["init", "-q", "--initial-branch=main", "."]);
  await git(["remote", "add", "origin", bare]);
  let current = "main";
  return {
    url: `file://${bare}`,
    async commit(files, message = "change", branch = "main") {
      if (branch !== current) {
        await git(["checkout", "-q", "-B", branch]);
        current = branch;
      }
      for (const [path, content] of Object.entries(files)) {
        const full = join(work, path);
        if (content === null) await rm(full, { force: true });
        else {
          await mkdir(dirname(full), { recursive: true });
          await writeFile(full, content);
        }
      }
      await git(["add", "-A"]);
      await git(["commit", "-q", "--allow-empty", "-m", message]);
      await git(["push", "-q", "origin", `${branch}:refs/heads/${branch}`]);
      await run("chmod", ["-R", "a+rX", bare]);
      return (await git(["rev-parse", "HEAD"])).stdout.trim();
    },
    async remove() {
      await rm(work, { recursive: true, force: true });
      await rm(bare, { recursive: true, force: true });
    },
  };
}
