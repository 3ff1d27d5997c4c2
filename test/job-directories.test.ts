// An agent slot's job directory: used again by the slot's next job when the
// job before left it empty, made anew otherwise; and one agent per work root.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeJobDirectory, removeJobDirectory } from "@otto/agent/step-sandbox";
import { claimWorkRoot } from "@otto/agent/work-root";

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
async function workRoot(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "otto-job-dirs-"));
  dirs.push(dir);
  return dir;
}
const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

describe("a slot's job directory", () => {
  it("is the slot's own, kept for the next job when left empty, as new again", async () => {
    const root = await workRoot();
    const first = await makeJobDirectory(root, undefined, 3);
    assert.equal(first.root, join(root, "slot-3"));
    assert.deepEqual((await readdir(first.root)).sort(), ["home", "tmp", "workspace"]);
    const workspace = await stat(first.workspace);
    // A job that changed its workspace's mode and left nothing in it.
    await chmod(first.workspace, 0o777);
    await removeJobDirectory(first);

    const second = await makeJobDirectory(root, undefined, 3);
    assert.equal(second.root, first.root);
    assert.equal((await stat(second.workspace)).ino, workspace.ino, "the same directory, not a new one");
    assert.equal(await modeOf(second.workspace), 0o755);
    assert.equal(await modeOf(join(second.root, "home")), 0o700);
  });

  it("is made anew after a job that left something in it, or when this process has not seen it left empty", async () => {
    const root = await workRoot();
    const job = await makeJobDirectory(root, undefined, 1);
    await writeFile(join(job.workspace, "build.out"), "left behind");
    await removeJobDirectory(job);
    await assert.rejects(stat(job.root), { code: "ENOENT" });
    const next = await makeJobDirectory(root, undefined, 1);
    assert.deepEqual(await readdir(next.workspace), []);

    // As an agent that stopped mid-job left it.
    await mkdir(join(root, "slot-2", "home", ".cache"), { recursive: true });
    await writeFile(join(root, "slot-2", "stray"), "");
    const fresh = await makeJobDirectory(root, undefined, 2);
    assert.deepEqual(await readdir(join(fresh.root, "home")), []);
    assert.deepEqual((await readdir(fresh.root)).sort(), ["home", "tmp", "workspace"]);
  });
});

describe("an agent's work root", () => {
  it("is claimed by one agent process: refused while another lives, taken over from one that is gone", async () => {
    const root = await workRoot();
    assert.equal(await claimWorkRoot(root), undefined);
    assert.equal((await readFile(join(root, "agent.pid"), "utf8")).trim(), String(process.pid));
    assert.equal(await claimWorkRoot(root), undefined, "claimed again by the same process");

    const other = spawn(process.execPath, ["-e", "process.stdin.resume()"], { stdio: ["pipe", "ignore", "ignore"] });
    await new Promise((resolve) => other.once("spawn", resolve));
    await writeFile(join(root, "agent.pid"), `${other.pid}\n`);
    assert.match((await claimWorkRoot(root)) ?? "", new RegExp(`another agent \\(process ${other.pid}\\) works there`));

    const exited = new Promise((resolve) => other.once("exit", resolve));
    other.stdin!.end();
    await exited;
    assert.equal(await claimWorkRoot(root), undefined);
    assert.equal((await readFile(join(root, "agent.pid"), "utf8")).trim(), String(process.pid));
  });
});
