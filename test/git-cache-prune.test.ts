// The coordinators' git cache shrinks: a cached repository no read used for
// longer than OTTO_GIT_CACHE_DAYS is deleted, one in use is kept, and a read
// after a prune fetches again. With real git, from a file:// repository.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readFileAtCommit } from "@otto/coordinator/git/read-file-at-commit";
import { pruneGitCache } from "@otto/coordinator/git/prune-git-cache";
import { createTestRepo, type TestRepo } from "./helpers/git-repo.ts";

const dayMs = 86_400_000;

describe("pruning the git cache", () => {
  let dir: string;
  let cacheDir: string;
  let repo: TestRepo;
  let other: TestRepo;
  let sha: string;
  let otherSha: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "otto-git-prune-"));
    cacheDir = join(dir, "cache");
    repo = await createTestRepo(dir, "acme", "app");
    other = await createTestRepo(dir, "acme", "lib");
    sha = await repo.commit({ ".otto.yml": "name: app\n" });
    otherSha = await other.commit({ ".otto.yml": "name: lib\n" });
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const cached = async () => (await readdir(cacheDir)).filter((name) => name.endsWith(".git"));
  const age = async (name: string, days: number) => {
    const then = new Date(Date.now() - days * dayMs);
    await utimes(join(cacheDir, name), then, then);
  };

  it("deletes a repository unused for longer than its days, keeps one in use, and a later read fetches again", async () => {
    assert.deepEqual(await pruneGitCache(cacheDir, 14 * dayMs), [], "no cache yet: nothing to do");
    await readFileAtCommit({ repoUrl: repo.url, sha, path: ".otto.yml", cacheDir });
    const [app] = await cached();
    await readFileAtCommit({ repoUrl: other.url, sha: otherSha, path: ".otto.yml", cacheDir });
    const [lib] = (await cached()).filter((name) => name !== app);
    await age(app, 20);
    await age(lib, 20);
    // A read marks its repository used.
    await readFileAtCommit({ repoUrl: other.url, sha: otherSha, path: ".otto.yml", cacheDir });

    assert.deepEqual(await pruneGitCache(cacheDir, 14 * dayMs), [app]);
    assert.deepEqual(await cached(), [lib]);
    assert.equal(await pruneGitCache(cacheDir, 30 * dayMs).then((removed) => removed.length), 0);

    const again = await readFileAtCommit({ repoUrl: repo.url, sha, path: ".otto.yml", cacheDir });
    assert.deepEqual(again, { found: true, text: "name: app\n" });
    assert.deepEqual((await cached()).sort(), [app, lib].sort());
  });

  it("deletes what a process that died left half made or half deleted, after an hour", async () => {
    for (const name of [".init-old", ".prune-old", ".init-new"]) await mkdir(join(cacheDir, name, "objects"), { recursive: true });
    await age(".init-old", 1 / 12);
    await age(".prune-old", 1 / 12);
    assert.deepEqual((await pruneGitCache(cacheDir, 14 * dayMs)).sort(), [".init-old", ".prune-old"]);
    assert.ok((await readdir(cacheDir)).includes(".init-new"), "one being made now is left alone");
  });
});
