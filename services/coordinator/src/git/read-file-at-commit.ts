// Reads one file as it is at one commit of a project's repository: the
// pipeline file of a run a forge's webhook started. The commit is fetched
// alone (depth 1) into a bare repository kept in cacheDir, one per
// repository URL, and read from there; a commit fetched once is read from
// the cache ever after.
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, rename, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isCommitId } from "./commit-id.ts";
import { gitEnvironment } from "./git-environment.ts";
import { createPerKeyQueue } from "./per-key-queue.ts";
import { markUsed } from "./prune-git-cache.ts";
import { runGit, type GitOutcome } from "./run-git.ts";

export interface ReadAtCommit {
  repoUrl: string;
  sha: string;
  path: string;
  cacheDir: string;
  authHeader?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

// `refused`: the repository wants credentials this read did not have.
export type FileAtCommit = { found: true; text: string } | { found: false; why: string; refused?: true };

export class GitReadError extends Error {
  name = "GitReadError";
}

// The repository wants credentials this read does not have: asking again
// will not change that, so the file is not found, saying why.
class AccessRefused extends Error {}

export const maxFileBytes = 1024 * 1024;
const defaultTimeoutMs = 60_000;

// In-process only: separate processes sharing a cacheDir rely on git's own
// lock files, and on FETCH_HEAD not being written (it is one file for all).
const oneFetchAtATime = createPerKeyQueue();

export async function readFileAtCommit(options: ReadAtCommit): Promise<FileAtCommit> {
  checkArguments(options);
  const { repoUrl, sha, path } = options;
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const secrets = options.authHeader ? secretsOf(options.authHeader) : [];
  const where = `${path} at commit ${shortId(sha)} of ${withoutCredentials(repoUrl)}`;

  try {
    const cacheDir = resolve(options.cacheDir);
    const repo = join(cacheDir, cacheRepositoryName(repoUrl, sha, options.authHeader));
    const config: [string, string][] = [
      // gc after a fetch runs inside the fetch, bounded and stopped with it,
      // not as a daemon outliving it.
      ["gc.autoDetach", "false"],
    ];
    if (options.authHeader && /^https:\/\//i.test(repoUrl)) config.push(["http.extraHeader", options.authHeader]);
    const env = { ...gitEnvironment(cacheDir, config), GIT_DIR: repo };
    const git = (args: string[], more: { input?: string; maxStdoutBytes?: number } = {}) => runGit(args, { env, signal, ...more });

    await oneFetchAtATime(repo, signal, async () => {
      await ensureBareRepository(cacheDir, repo, sha, signal);
      if (!(await isCached(git, sha))) await fetchCommit(git, repoUrl, sha, config.some(([key]) => key === "http.extraHeader"));
      await markUsed(repo);
    });
    return await readBlob(git, sha, path);
  } catch (error) {
    if (error instanceof AccessRefused) return { found: false, why: redact(error.message, secrets), refused: true };
    const failure = asGitReadError(error, { options, signal, timeoutMs, where });
    throw new GitReadError(redact(failure.message, secrets), { cause: failure.cause });
  }
}

function checkArguments({ repoUrl, sha, path, cacheDir, authHeader, timeoutMs }: ReadAtCommit): void {
  if (typeof sha !== "string" || !isCommitId(sha)) {
    throw new TypeError(`sha must be a full commit id (40 or 64 lowercase hex digits), not ${quoteShort(sha)}`);
  }
  if (typeof repoUrl !== "string" || repoUrl === "" || repoUrl.startsWith("-") || /[\0\r\n]/.test(repoUrl)) {
    throw new TypeError(`repoUrl must be a repository URL, not ${quoteShort(withoutCredentials(String(repoUrl)))}`);
  }
  const problem = pathProblem(path);
  if (problem) throw new TypeError(`path ${quoteShort(path)} ${problem}`);
  if (typeof cacheDir !== "string" || cacheDir === "") throw new TypeError("cacheDir must be a directory");
  if (authHeader !== undefined && (typeof authHeader !== "string" || /[\0\r\n]/.test(authHeader))) {
    throw new TypeError("authHeader must be one header line");
  }
  if (timeoutMs !== undefined && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
    throw new TypeError(`timeoutMs must be a positive number of milliseconds, not ${timeoutMs}`);
  }
}

// The path goes into git's <commit>:<path> syntax, where "./" and "../"
// would mean the current directory, and a line break would end the request
// to cat-file --batch-check.
function pathProblem(path: unknown): string | undefined {
  if (typeof path !== "string" || path === "") return "must be a repository-relative file path";
  if (/[\0\r\n]/.test(path)) return "must not contain a NUL or a line break";
  if (path.startsWith("/")) return "must be relative to the repository, not absolute";
  if (path.startsWith("-")) return "must not start with '-'";
  const segments = path.split("/");
  if (segments.includes("..")) return "must not contain '..'";
  if (segments.some((segment) => segment === "" || segment === ".")) return "must not contain empty or '.' segments";
  return undefined;
}

// One bare repository per URL and credential (what was fetched with a
// token is never read back for a caller without it, or with another), and
// per object format (a SHA-1 repository cannot fetch from a SHA-256 one).
function cacheRepositoryName(repoUrl: string, sha: string, authHeader: string | undefined): string {
  const hash = createHash("sha256").update(authHeader === undefined ? repoUrl : `${repoUrl}\n${authHeader}`).digest("hex");
  return sha.length === 64 ? `${hash}-sha256.git` : `${hash}.git`;
}

// Made under a temporary name and renamed into place, so a repository that
// exists is whole, whichever process made it.
async function ensureBareRepository(cacheDir: string, repo: string, sha: string, signal: AbortSignal): Promise<void> {
  await mkdir(cacheDir, { recursive: true, mode: 0o700 });
  await chmod(cacheDir, 0o700);
  if (await isDirectory(repo)) return;
  const temporary = await mkdtemp(join(cacheDir, ".init-"));
  try {
    const format = sha.length === 64 ? "sha256" : "sha1";
    const env = gitEnvironment(cacheDir, []);
    const outcome = await runGit(["init", "--bare", "--quiet", `--object-format=${format}`, "--", temporary], { env, signal });
    if (outcome.code !== 0) throw new GitReadError(`git init of the cache repository failed${stderrTail(outcome)}`);
    await rename(temporary, repo).catch(async (error: NodeJS.ErrnoException) => {
      // Another process made it first.
      if (!(error.code === "ENOTEMPTY" || error.code === "EEXIST") || !(await isDirectory(repo))) throw error;
    });
  } finally {
    await rm(temporary, { recursive: true, force: true });
  }
}

type Git = (args: string[], more?: { input?: string; maxStdoutBytes?: number }) => Promise<GitOutcome>;

// A commit counts as cached when its ref is there: the ref is written only
// once the fetch has checked every object arrived, whereas the commit object
// alone may be left by a fetch stopped halfway.
async function isCached(git: Git, sha: string): Promise<boolean> {
  const outcome = await git(["rev-parse", "--verify", "--quiet", cachedRef(sha)]);
  if (outcome.code === 0) return true;
  if (outcome.code === 1) return false;
  throw new GitReadError(`git rev-parse in the cache repository failed${stderrTail(outcome)}`);
}

function cachedRef(sha: string): string {
  return `refs/otto/commits/${sha}`;
}

async function fetchCommit(git: Git, repoUrl: string, sha: string, credentialSent: boolean): Promise<void> {
  const outcome = await git([
    "fetch",
    "--depth=1",
    "--no-tags",
    "--no-write-fetch-head",
    "--no-recurse-submodules",
    "--",
    repoUrl,
    `${sha}:${cachedRef(sha)}`,
  ]);
  if (outcome.code === 0) return;
  const url = withoutCredentials(repoUrl);
  const tail = stderrTail(outcome);
  if (/not our ref|couldn't find remote ref|unadvertised object|no such remote ref/i.test(outcome.stderr)) {
    throw new GitReadError(`commit ${sha} was not found in ${url}${tail}`);
  }
  // GitHub answers a token that may not read a private repository as if
  // there were no such repository.
  if (/Authentication failed|could not read (Username|Password)|returned error: 40[13]/i.test(outcome.stderr) || (credentialSent && /repository '[^']*' not found/i.test(outcome.stderr))) {
    throw new AccessRefused(`repository ${url} refused access: a private repository is read with its project's forge token (forge.tokenSecret, a secret that is set, with read access to the repository)${tail}`);
  }
  if (/transport '[^']*' not allowed/.test(outcome.stderr)) {
    throw new GitReadError(`repository ${url} uses a protocol that is not allowed (only https, ssh and file are)${tail}`);
  }
  if (
    /does not appear to be a git repository|Could not read from remote repository|unable to access|not found|Could not resolve host|Connection refused|Permission denied/i.test(
      outcome.stderr,
    )
  ) {
    throw new GitReadError(`repository ${url} could not be reached${tail}`);
  }
  throw new GitReadError(`git fetch of commit ${sha} from ${url} failed (exit ${outcome.code})${tail}`);
}

async function readBlob(git: Git, sha: string, path: string): Promise<FileAtCommit> {
  const at = `at commit ${shortId(sha)}`;
  // One request for both: that the id names a commit (not a tree or blob,
  // which <id>:<path> would accept too), and what is at the path. Symbolic
  // links inside the tree are followed, as a checkout would.
  const listed = await git(["cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)", "--follow-symlinks"], {
    input: `${sha}\n${sha}:${path}\n`,
  });
  if (listed.code !== 0) throw new GitReadError(`git cat-file in the cache repository failed${stderrTail(listed)}`);
  const [commitLine = "", entryLine = "", detailLine = ""] = listed.stdout.toString("utf8").split("\n");
  const [, commitType] = commitLine.split(" ");
  if (commitType === "missing") throw new GitReadError(`commit ${sha} is missing from the cache repository`);
  if (commitType !== "commit") throw new GitReadError(`${sha} names a ${commitType}, not a commit`);

  const [first, second, third] = entryLine.split(" ");
  if (entryLine.endsWith(" missing") || first === "notdir") return { found: false, why: `${path} does not exist ${at}` };
  if (first === "dangling") return { found: false, why: `${path} is a symbolic link to a file that does not exist ${at}` };
  if (first === "loop") return { found: false, why: `${path} is a loop of symbolic links ${at}` };
  if (first === "symlink") {
    return { found: false, why: `${path} is a symbolic link to ${detailLine}, outside the repository, ${at}` };
  }
  const size = Number(third);
  if (second === "tree") return { found: false, why: `${path} is a directory ${at}` };
  if (second === "commit") return { found: false, why: `${path} is a submodule ${at}` };
  if (second !== "blob" || !Number.isSafeInteger(size)) {
    throw new GitReadError(`git cat-file answered ${JSON.stringify(entryLine)} for ${path} ${at}`);
  }
  if (size > maxFileBytes) return { found: false, why: `${path} is larger than 1 MiB (${size} bytes) ${at}` };

  const blob = await git(["cat-file", "blob", first], { maxStdoutBytes: maxFileBytes });
  if (blob.code !== 0 || blob.stdout.length !== size) {
    throw new GitReadError(`git cat-file could not read ${path} ${at}${stderrTail(blob)}`);
  }
  try {
    return { found: true, text: new TextDecoder("utf-8", { fatal: true }).decode(blob.stdout) };
  } catch {
    return { found: false, why: `${path} is not UTF-8 text ${at}` };
  }
}

function asGitReadError(
  error: unknown,
  context: { options: ReadAtCommit; signal: AbortSignal; timeoutMs: number; where: string },
): GitReadError {
  const { options, signal, timeoutMs, where } = context;
  if (error instanceof GitReadError) return error;
  if (signal.aborted && error === signal.reason) {
    if (options.signal?.aborted) return new GitReadError(`reading ${where} was aborted`, { cause: error });
    return new GitReadError(`reading ${where} timed out after ${timeoutMs} ms`, { cause: error });
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new GitReadError(`reading ${where} failed: ${reason}`, { cause: error });
}

// git's last words, which say what went wrong.
function stderrTail(outcome: GitOutcome): string {
  const lines = outcome.stderr
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  const tail = lines.slice(-4).join("; ").slice(-1000);
  return tail ? `: ${tail}` : "";
}

// Neither the header nor the credential inside it ("Authorization: Basic
// <token>") may reach a message, whatever git printed.
function secretsOf(header: string): string[] {
  const value = header.slice(header.indexOf(":") + 1).trim();
  const parts = value.split(/\s+/).filter((part) => part.length >= 8);
  return [header, value, ...parts].filter(Boolean).sort((a, b) => b.length - a.length);
}

function redact(message: string, secrets: string[]): string {
  let result = message;
  for (const secret of secrets) result = result.split(secret).join("[redacted]");
  return result;
}

// https://user:token@host/... keeps the token out of messages.
function withoutCredentials(url: string): string {
  return url.replace(/^(https?:\/\/)[^/@]*@/i, "$1");
}

function shortId(sha: string): string {
  return sha.slice(0, 7);
}

function quoteShort(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
}
