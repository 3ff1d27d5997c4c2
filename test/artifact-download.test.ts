// The agent's download of a task's needed artifacts into its workspace,
// against a real HTTP server standing in for storage's presigned URLs.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ArtifactSourceSchema, NeededArtifactSchema, type ArtifactSource } from "@otto/gen/v1/artifact_service_pb";
import { ArtifactDownloadError, downloadNeededArtifacts, formatBytes, type DownloadOptions } from "@otto/agent/artifact-download";

const runId = "5d0c6a8e-1b1f-4c55-9a5e-0c7f6f1d2a10";
const oldRunId = "9a1f0e3c-2d4b-4e6f-8a0b-1c2d3e4f5a6b";

describe("downloading the artifacts a task needs", () => {
  let server: http.Server;
  let base: string;
  let dir: string;
  // Bytes by path; a path's failures to answer before it does (503s).
  const files = new Map<string, Buffer>();
  const failuresLeft = new Map<string, number>();

  before(async () => {
    server = http.createServer((req, res) => {
      const path = new URL(req.url!, "http://x").pathname;
      const failures = failuresLeft.get(path) ?? 0;
      if (failures > 0) {
        failuresLeft.set(path, failures - 1);
        res.writeHead(path.startsWith("/forbidden") ? 403 : 503).end();
        return;
      }
      const body = files.get(path);
      if (!body) res.writeHead(404).end();
      else res.writeHead(200, { "content-length": body.length }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = await mkdtemp(join(tmpdir(), "otto-artifact-download-"));
  });
  after(async () => {
    server?.closeAllConnections();
    server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const source = (job: string, run = runId, attempt = 1) => create(ArtifactSourceSchema, { runId: run, job, attempt });
  // What ListNeededArtifacts would answer for each source: its files, served at /<job>/<name>.
  const serve = (job: string, named: Record<string, string>, size = (text: string) => Buffer.byteLength(text)) => {
    for (const [name, text] of Object.entries(named)) files.set(`/${job}/${name}`, Buffer.from(text));
    return Object.entries(named).map(([name, text]) =>
      create(NeededArtifactSchema, { url: `${base}/${job}/${name}`, artifact: { runId, job, attempt: 1, name, size: BigInt(size(text)) } }),
    );
  };
  const workspace = () => mkdtemp(join(dir, "ws-"));
  const download = async (over: Partial<DownloadOptions> & { sources: ArtifactSource[]; list: DownloadOptions["list"] }) => {
    const log: string[] = [];
    const options: DownloadOptions = { runId, workspace: await workspace(), signal: new AbortController().signal, log: (t) => log.push(t), firstWaitMs: 1, ...over };
    const result = await downloadNeededArtifacts(options).then(
      () => undefined,
      (err: unknown) => err,
    );
    return { log, result, workspace: options.workspace };
  };

  it("puts each need's files at their paths, nested ones too, and says what came from where", async () => {
    const build = serve("build", { "out/app.txt": "the app\n", "out/nested/deep/data.bin": "x".repeat(1234) });
    const docs = serve("docs", { "index.html": "<p>hi</p>" });
    const { log, result, workspace } = await download({
      sources: [source("build"), source("docs", oldRunId, 2)],
      list: async (s) => (s.job === "build" ? build : docs),
    });
    assert.equal(result, undefined);
    assert.equal(await readFile(join(workspace, "out/app.txt"), "utf8"), "the app\n");
    assert.equal(await readFile(join(workspace, "out/nested/deep/data.bin"), "utf8"), "x".repeat(1234));
    assert.equal(await readFile(join(workspace, "index.html"), "utf8"), "<p>hi</p>");
    assert.deepEqual(log, ["artifacts from build: 2 files, 1.2 kB", `artifacts from docs of run ${oldRunId} (attempt 2): 1 file, 9 bytes`]);
  });

  it("gives the files and the directories it makes to the steps' user", { skip: process.getuid?.() !== 0 && "needs root to give files away" }, async () => {
    const build = serve("owned", { "a/b/c.txt": "c" });
    const { result, workspace } = await download({ sources: [source("owned")], list: async () => build, owner: { uid: 65534, gid: 65534 } });
    assert.equal(result, undefined);
    for (const path of ["a", "a/b", "a/b/c.txt"]) {
      const info = await stat(join(workspace, path));
      assert.deepEqual([info.uid, info.gid], [65534, 65534], path);
      assert.ok(info.mode & 0o200, `${path} is writable by its owner`);
    }
  });

  it("never follows a symbolic link out of the workspace", async () => {
    const outside = await mkdtemp(join(dir, "outside-"));
    await writeFile(join(outside, "app.txt"), "untouched");
    const build = serve("linked", { "out/app.txt": "bytes", "app.txt": "bytes" });
    // A link where a directory goes, and one where the file goes.
    const ws = await workspace();
    await symlink(outside, join(ws, "out"));
    await symlink(join(outside, "app.txt"), join(ws, "app.txt"));
    const asDirectory = await download({ sources: [source("linked")], list: async () => [build[0]], workspace: ws });
    assert.ok(asDirectory.result instanceof ArtifactDownloadError);
    assert.equal(asDirectory.result.message, "artifact out/app.txt cannot be placed: out is not a directory");
    const asFile = await download({ sources: [source("linked")], list: async () => [build[1]], workspace: ws });
    assert.ok(asFile.result instanceof ArtifactDownloadError);
    assert.match(asFile.result.message, /^could not download artifact app\.txt of linked: .*ELOOP/);
    assert.equal(await readFile(join(outside, "app.txt"), "utf8"), "untouched");
    assert.deepEqual(await readdir(outside), ["app.txt"]);
  });

  it("refuses a name that would climb out, whatever the service says", async () => {
    const bad = create(NeededArtifactSchema, { url: `${base}/x`, artifact: { name: "../escape.txt", size: 1n } });
    const { result } = await download({ sources: [source("build")], list: async () => [bad] });
    assert.ok(result instanceof ArtifactDownloadError);
    assert.match(result.message, /^artifact of build refused: artifact path "\.\.\/escape\.txt" must be relative/);
  });

  it("asks again, with fresh URLs, while storage fails, and fails the job with a clear message when it goes on failing", async () => {
    const flaky = serve("flaky", { "f.txt": "fine" });
    failuresLeft.set("/flaky/f.txt", 2);
    let lists = 0;
    const recovered = await download({ sources: [source("flaky")], list: async () => (lists++, flaky), tries: 3 });
    assert.equal(recovered.result, undefined);
    assert.equal(lists, 3, "listed anew before each try");
    assert.equal(await readFile(join(recovered.workspace, "f.txt"), "utf8"), "fine");

    const expired = serve("forbidden", { "f.txt": "fine" });
    failuresLeft.set("/forbidden/f.txt", 1);
    assert.equal((await download({ sources: [source("forbidden")], list: async () => expired, tries: 2 })).result, undefined, "an expired URL is presigned anew");

    const down = serve("down", { "d.txt": "never" });
    failuresLeft.set("/down/d.txt", 100);
    const failed = await download({ sources: [source("down")], list: async () => down, tries: 3 });
    assert.ok(failed.result instanceof ArtifactDownloadError);
    assert.equal(failed.result.message, "could not download artifact d.txt of down in 3 tries: storage answered HTTP 503");

    const short = serve("short", { "s.txt": "abc" }, () => 10);
    const cut = await download({ sources: [source("short")], list: async () => short, tries: 2 });
    assert.ok(cut.result instanceof ArtifactDownloadError);
    assert.equal(cut.result.message, "could not download artifact s.txt of short in 2 tries: storage sent 3 bytes of 10");

    const gone = create(NeededArtifactSchema, { url: `${base}/nowhere`, artifact: { name: "gone.txt", size: 1n } });
    const missing = await download({ sources: [source("build")], list: async () => [gone], tries: 5 });
    assert.ok(missing.result instanceof ArtifactDownloadError);
    assert.equal(missing.result.message, "could not download artifact gone.txt of build: storage answered HTTP 404", "a missing object is not asked for again");
  });

  it("fails the job with the service's own words, but leaves an ended attempt to the caller", async () => {
    const retention = new ConnectError("artifact a.txt of job build (attempt 1) of run R was deleted by retention on 2026-01-01T00:00:00.000Z", Code.NotFound);
    const deleted = await download({ sources: [source("build")], list: () => Promise.reject(retention) });
    assert.ok(deleted.result instanceof ArtifactDownloadError);
    assert.equal(deleted.result.message, `could not get the artifacts of build: ${retention.rawMessage}`);
    const ended = new ConnectError("attempt 1 of job test has ended", Code.FailedPrecondition);
    const taken = await download({ sources: [source("build")], list: () => Promise.reject(ended) });
    assert.equal(taken.result, ended);
  });

  it("writes sizes as people read them", () => {
    assert.deepEqual([0, 1, 999, 1000, 1234, 1_200_000, 999_960, 3_400_000_000].map(formatBytes), [
      "0 bytes",
      "1 byte",
      "999 bytes",
      "1.0 kB",
      "1.2 kB",
      "1.2 MB",
      "1.0 MB",
      "3.4 GB",
    ]);
  });
});
