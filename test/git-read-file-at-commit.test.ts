// Reading a run's pipeline file at the commit a webhook named, with real git:
// a bare "forge" repository in a temp dir, read through file:// URLs (and an
// https server of the test's own for the auth header and for timeouts).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer, type Server } from "node:https";
import type { IncomingMessage } from "node:http";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, unlink, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ensureLocalCa } from "@otto/kit/local-ca";
import { isCommitId } from "@otto/coordinator/git/commit-id";
import { GitReadError, readFileAtCommit } from "@otto/coordinator/git/read-file-at-commit";

const run = promisify(execFile);
const mib = 1024 * 1024;

describe("reading a file at a commit with git", () => {
  let dir: string;
  let source: string;
  let url: string;
  const commits: Record<"first" | "second" | "deleted" | "feature", string> = { first: "", second: "", deleted: "", feature: "" };
  let caseNumber = 0;
  // A cache of its own for each test, so none is served by another's fetch.
  const freshCache = () => join(dir, `cache-${++caseNumber}`);

  // git for the test's own repositories: no global or system config read or written.
  const gitEnv = () => ({
    PATH: process.env.PATH!,
    HOME: dir,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_AUTHOR_NAME: "Test",
    GIT_AUTHOR_EMAIL: "test@example.invalid",
    GIT_COMMITTER_NAME: "Test",
    GIT_COMMITTER_EMAIL: "test@example.invalid",
  });
  const git = async (cwd: string, ...args: string[]) => (await run("git", args, { cwd, env: gitEnv() })).stdout.trim();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "otto-git-read-"));
    source = join(dir, "forge.git");
    url = `file://${source}`;
    await git(dir, "init", "--quiet", "--bare", "--initial-branch=main", source);
    const work = join(dir, "work");
    await git(dir, "init", "--quiet", "--initial-branch=main", work);

    await writeFile(join(work, ".otto.yml"), "version: 1\n");
    await mkdir(join(work, "ci"));
    await writeFile(join(work, "ci", "pipeline.yml"), "in: ci\n");
    await symlink("ci/pipeline.yml", join(work, "linked.yml"));
    await symlink("../outside.yml", join(work, "escaping.yml"));
    await writeFile(join(work, "exactly-1-mib.yml"), Buffer.alloc(mib, "a"));
    await writeFile(join(work, "big.yml"), Buffer.alloc(mib + 1, "a"));
    await writeFile(join(work, "latin1.yml"), Buffer.from([0x6e, 0x61, 0xef, 0x76, 0x65, 0x0a]));
    await git(work, "add", ".");
    await git(work, "commit", "--quiet", "-m", "first");
    commits.first = await git(work, "rev-parse", "HEAD");

    await writeFile(join(work, ".otto.yml"), "version: 2\n");
    await git(work, "commit", "--quiet", "-am", "second");
    commits.second = await git(work, "rev-parse", "HEAD");

    await git(work, "checkout", "--quiet", "-b", "feature");
    await writeFile(join(work, ".otto.yml"), "version: feature\n");
    await git(work, "commit", "--quiet", "-am", "on a feature branch");
    commits.feature = await git(work, "rev-parse", "HEAD");

    await git(work, "checkout", "--quiet", "main");
    await unlink(join(work, ".otto.yml"));
    await git(work, "commit", "--quiet", "-am", "no pipeline");
    commits.deleted = await git(work, "rev-parse", "HEAD");

    await git(work, "push", "--quiet", url, "main", "feature");
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("reads each commit's own version of the file, not the branch tip's", async () => {
    const cacheDir = freshCache();
    assert.deepEqual(await readFileAtCommit({ repoUrl: url, sha: commits.first, path: ".otto.yml", cacheDir }), {
      found: true,
      text: "version: 1\n",
    });
    assert.deepEqual(await readFileAtCommit({ repoUrl: url, sha: commits.second, path: ".otto.yml", cacheDir }), {
      found: true,
      text: "version: 2\n",
    });
  });

  it("reads a commit that only a branch other than the default has, by its id", async () => {
    const read = await readFileAtCommit({ repoUrl: url, sha: commits.feature, path: ".otto.yml", cacheDir: freshCache() });
    assert.deepEqual(read, { found: true, text: "version: feature\n" });
  });

  it("reads a file in a subdirectory", async () => {
    const read = await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "ci/pipeline.yml", cacheDir: freshCache() });
    assert.deepEqual(read, { found: true, text: "in: ci\n" });
  });

  it("says a file deleted at that commit does not exist there, naming the path and the commit", async () => {
    const read = await readFileAtCommit({ repoUrl: url, sha: commits.deleted, path: ".otto.yml", cacheDir: freshCache() });
    assert.deepEqual(read, { found: false, why: `.otto.yml does not exist at commit ${commits.deleted.slice(0, 7)}` });
  });

  it("says a path under a file does not exist", async () => {
    const read = await readFileAtCommit({ repoUrl: url, sha: commits.first, path: ".otto.yml/pipeline.yml", cacheDir: freshCache() });
    assert.equal(read.found, false);
    assert.match(read.found ? "" : read.why, /^\.otto\.yml\/pipeline\.yml does not exist at commit /);
  });

  it("says a directory is not a file", async () => {
    const read = await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "ci", cacheDir: freshCache() });
    assert.deepEqual(read, { found: false, why: `ci is a directory at commit ${commits.first.slice(0, 7)}` });
  });

  it("follows a symbolic link inside the repository, and refuses one leading out of it", async () => {
    const cacheDir = freshCache();
    assert.deepEqual(await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "linked.yml", cacheDir }), {
      found: true,
      text: "in: ci\n",
    });
    const escaping = await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "escaping.yml", cacheDir });
    assert.equal(escaping.found, false);
    assert.match(escaping.found ? "" : escaping.why, /escaping\.yml is a symbolic link to \.\.\/outside\.yml, outside the repository/);
  });

  it("refuses a file larger than 1 MiB, and reads one of exactly 1 MiB", async () => {
    const cacheDir = freshCache();
    const big = await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "big.yml", cacheDir });
    assert.deepEqual(big, { found: false, why: `big.yml is larger than 1 MiB (${mib + 1} bytes) at commit ${commits.first.slice(0, 7)}` });
    const exact = await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "exactly-1-mib.yml", cacheDir });
    assert.equal(exact.found && exact.text.length, mib);
  });

  it("refuses a file that is not UTF-8", async () => {
    const read = await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "latin1.yml", cacheDir: freshCache() });
    assert.deepEqual(read, { found: false, why: `latin1.yml is not UTF-8 text at commit ${commits.first.slice(0, 7)}` });
  });

  it("fails with a GitReadError naming a commit the repository does not have", async () => {
    const unknown = "0123456789abcdef0123456789abcdef01234567";
    await assert.rejects(readFileAtCommit({ repoUrl: url, sha: unknown, path: ".otto.yml", cacheDir: freshCache() }), (error) => {
      assert.ok(error instanceof GitReadError);
      assert.match(error.message, new RegExp(`^commit ${unknown} was not found in ${url}: .*not our ref`));
      return true;
    });
  });

  it("fails with a GitReadError for a repository that does not exist", async () => {
    const missing = `file://${join(dir, "no-such-repository.git")}`;
    await assert.rejects(readFileAtCommit({ repoUrl: missing, sha: commits.first, path: ".otto.yml", cacheDir: freshCache() }), (error) => {
      assert.ok(error instanceof GitReadError);
      assert.match(error.message, /^repository file:\/\/.*no-such-repository\.git could not be reached: .*does not appear to be a git repository/);
      return true;
    });
  });

  it("refuses ids, paths and URLs that try to smuggle in options or commands, before anything runs", async () => {
    const marker = join(dir, "injected");
    const cacheDir = freshCache();
    const good = { repoUrl: url, sha: commits.first, path: ".otto.yml", cacheDir };
    const refused = [
      { ...good, sha: `--upload-pack=touch ${marker}` },
      { ...good, sha: `${commits.first} --upload-pack=touch ${marker}` },
      { ...good, sha: commits.first.toUpperCase() },
      { ...good, sha: commits.first.slice(0, 12) },
      { ...good, repoUrl: `--upload-pack=touch ${marker}` },
      { ...good, path: "../../etc/passwd" },
      { ...good, path: "ci/../../etc/passwd" },
      { ...good, path: "/etc/passwd" },
      { ...good, path: "-p" },
      { ...good, path: "./.otto.yml" },
      { ...good, path: "ci//pipeline.yml" },
      { ...good, path: ".otto.yml\0x" },
      { ...good, path: ".otto.yml\nHEAD" },
      { ...good, authHeader: "Authorization: Basic x\r\nX-Other: y" },
    ];
    for (const options of refused) {
      await assert.rejects(readFileAtCommit(options), TypeError, JSON.stringify(options));
    }
    // Not refused, but git gets it as a path, never through a shell.
    assert.deepEqual(await readFileAtCommit({ ...good, path: `$(touch ${marker})` }), {
      found: false,
      why: `$(touch ${marker}) does not exist at commit ${commits.first.slice(0, 7)}`,
    });
    assert.equal(existsSync(marker), false);
  });

  it("allows no protocol but https, ssh and file, so no remote helper can run a command", async () => {
    const marker = join(dir, "injected-by-ext");
    for (const repoUrl of [`ext::sh -c touch% ${marker}`, "http://127.0.0.1:9/repository.git"]) {
      await assert.rejects(readFileAtCommit({ repoUrl, sha: commits.first, path: ".otto.yml", cacheDir: freshCache() }), (error) => {
        assert.ok(error instanceof GitReadError);
        assert.match(error.message, /uses a protocol that is not allowed .*transport '(ext|http)' not allowed/);
        return true;
      });
    }
    assert.equal(existsSync(marker), false);
  });

  it("reads a commit it fetched once from its cache, without the repository", async () => {
    const cacheDir = freshCache();
    assert.equal((await readFileAtCommit({ repoUrl: url, sha: commits.first, path: ".otto.yml", cacheDir })).found, true);
    const moved = join(dir, "forge-moved.git");
    await rename(source, moved);
    try {
      assert.deepEqual(await readFileAtCommit({ repoUrl: url, sha: commits.first, path: ".otto.yml", cacheDir }), {
        found: true,
        text: "version: 1\n",
      });
      assert.deepEqual(await readFileAtCommit({ repoUrl: url, sha: commits.first, path: "ci/pipeline.yml", cacheDir }), {
        found: true,
        text: "in: ci\n",
      });
      // The repository really is gone: a commit not yet cached cannot be read.
      await assert.rejects(readFileAtCommit({ repoUrl: url, sha: commits.second, path: ".otto.yml", cacheDir }), GitReadError);
    } finally {
      await rename(moved, source);
    }
  });

  it("reads two commits of one repository at once", async () => {
    const cacheDir = freshCache();
    const reads = await Promise.all([
      readFileAtCommit({ repoUrl: url, sha: commits.first, path: ".otto.yml", cacheDir }),
      readFileAtCommit({ repoUrl: url, sha: commits.second, path: ".otto.yml", cacheDir }),
      readFileAtCommit({ repoUrl: url, sha: commits.feature, path: ".otto.yml", cacheDir }),
    ]);
    assert.deepEqual(
      reads.map((read) => read.found && read.text),
      ["version: 1\n", "version: 2\n", "version: feature\n"],
    );
    assert.equal((await readdir(cacheDir)).filter((name) => name.endsWith(".git")).length, 1);
  });

  it("keeps its cache in a directory only its own user can enter", async () => {
    const cacheDir = freshCache();
    await mkdir(cacheDir, { mode: 0o755 });
    await readFileAtCommit({ repoUrl: url, sha: commits.first, path: ".otto.yml", cacheDir });
    assert.equal((await stat(cacheDir)).mode & 0o777, 0o700);
  });

  it("reads from a SHA-256 repository by a 64-digit commit id", async () => {
    const source256 = join(dir, "forge-sha256.git");
    const work = join(dir, "work-sha256");
    await git(dir, "init", "--quiet", "--bare", "--object-format=sha256", source256);
    await git(dir, "init", "--quiet", "--object-format=sha256", work);
    await writeFile(join(work, ".otto.yml"), "version: sha256\n");
    await git(work, "add", ".");
    await git(work, "commit", "--quiet", "-m", "first");
    const sha = await git(work, "rev-parse", "HEAD");
    await git(work, "push", "--quiet", `file://${source256}`, "HEAD:refs/heads/main");
    assert.equal(sha.length, 64);
    assert.ok(isCommitId(sha));
    const read = await readFileAtCommit({ repoUrl: `file://${source256}`, sha, path: ".otto.yml", cacheDir: freshCache() });
    assert.deepEqual(read, { found: true, text: "version: sha256\n" });
  });

  describe("over https", () => {
    const token = "s3cret-forge-token-0123456789";
    const credential = Buffer.from(`x-access-token:${token}`).toString("base64");
    const authHeader = `Authorization: Basic ${credential}`;
    let server: Server;
    let httpsUrl: string;
    let onRequest: (request: IncomingMessage, respond: (status: number) => void) => void;
    let savedCaInfo: string | undefined;

    before(async () => {
      const files = await (await ensureLocalCa(join(dir, "tls"))).issue("forge", "forge");
      // The pass-through an operator with a private CA would use too.
      savedCaInfo = process.env.GIT_SSL_CAINFO;
      process.env.GIT_SSL_CAINFO = files.ca;
      server = createServer({ cert: await readFile(files.cert), key: await readFile(files.key) }, (request, response) => {
        onRequest(request, (status) => response.writeHead(status).end());
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      httpsUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}/project.git`;
    });

    after(async () => {
      if (savedCaInfo === undefined) delete process.env.GIT_SSL_CAINFO;
      else process.env.GIT_SSL_CAINFO = savedCaInfo;
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it("sends the auth header to the forge, never on a command line, and never in what it answers", async () => {
      const headers: (string | undefined)[] = [];
      let commandLinesWithToken: string[] = [];
      onRequest = (request, respond) => {
        headers.push(request.headers.authorization);
        // git is waiting on this answer: its processes are alive to be looked at.
        commandLinesWithToken = commandLinesContaining(credential);
        respond(404);
      };
      // A forge answers a token that may not read the repository as if it
      // did not exist (GitHub does): refused, not worth asking again.
      const read = await readFileAtCommit({ repoUrl: httpsUrl, sha: commits.first, path: ".otto.yml", cacheDir: freshCache(), authHeader });
      assert.ok(!read.found && read.refused, JSON.stringify(read));
      assert.match(read.why, /^repository https:\/\/127\.0\.0\.1:\d+\/project\.git refused access: /);
      assert.ok(!read.why.includes(credential) && !read.why.includes(token), read.why);

      // Without a token, a 404 is a repository that could not be reached.
      onRequest = (_request, respond) => respond(404);
      await assert.rejects(readFileAtCommit({ repoUrl: httpsUrl, sha: commits.first, path: ".otto.yml", cacheDir: freshCache() }), (error) => {
        assert.ok(error instanceof GitReadError);
        assert.match(error.message, /^repository https:\/\/127\.0\.0\.1:\d+\/project\.git could not be reached: /);
        return true;
      });
      assert.ok(headers.length > 0);
      assert.ok(headers.every((header) => header === `Basic ${credential}`));
      assert.deepEqual(commandLinesWithToken, []);
    });

    it("stops git and fails once the timeout has passed", { timeout: 20_000 }, async () => {
      let connectionClosed!: Promise<void>;
      onRequest = (request) => {
        connectionClosed = new Promise((resolve) => request.socket.once("close", () => resolve()));
      };
      await assert.rejects(
        readFileAtCommit({ repoUrl: httpsUrl, sha: commits.first, path: ".otto.yml", cacheDir: freshCache(), timeoutMs: 500 }),
        (error) => {
          assert.ok(error instanceof GitReadError);
          assert.match(error.message, /^reading \.otto\.yml at commit \w{7} of https:\/\/127\.0\.0\.1:\d+\/project\.git timed out after 500 ms$/);
          return true;
        },
      );
      // Only git's death closes the connection the server never answered.
      await connectionClosed;
    });

    it("stops git and fails when the caller aborts", { timeout: 20_000 }, async () => {
      const controller = new AbortController();
      let connectionClosed!: Promise<void>;
      onRequest = (request) => {
        connectionClosed = new Promise((resolve) => request.socket.once("close", () => resolve()));
        controller.abort();
      };
      await assert.rejects(
        readFileAtCommit({ repoUrl: httpsUrl, sha: commits.first, path: ".otto.yml", cacheDir: freshCache(), signal: controller.signal }),
        (error) => {
          assert.ok(error instanceof GitReadError);
          assert.match(error.message, /^reading \.otto\.yml at commit \w{7} of https:\/\/127\.0\.0\.1:\d+\/project\.git was aborted$/);
          return true;
        },
      );
      await connectionClosed;
    });
  });
});

describe("a commit id", () => {
  it("is 40 or 64 lowercase hex digits, and nothing else", () => {
    assert.equal(isCommitId("a".repeat(40)), true);
    assert.equal(isCommitId("0123456789abcdef".repeat(4)), true);
    for (const wrong of ["", "a".repeat(39), "a".repeat(41), "a".repeat(63), "a".repeat(65), "A".repeat(40), "g".repeat(40), `${"a".repeat(40)}\n`]) {
      assert.equal(isCommitId(wrong), false, JSON.stringify(wrong));
    }
  });
});

// Every process's command line that has the text in it (this process's own excepted).
function commandLinesContaining(text: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const commandLine = readFileSync(`/proc/${entry}/cmdline`, "latin1");
      if (commandLine.includes(text)) found.push(commandLine.replaceAll("\0", " "));
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}
