// The agent works only where no other user can swap a directory under it.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { chmod, chown, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { workRootProblem } from "@otto/agent/work-root";

describe("the agent's work directory", { skip: process.getuid?.() !== 0 && "needs root to make another user's directory" }, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const fresh = async () => {
    const dir = await mkdtemp(join(tmpdir(), "otto-work-root-"));
    dirs.push(dir);
    return dir;
  };

  it("is made private under directories only root or the agent may change", async () => {
    const dir = await fresh();
    assert.equal(await workRootProblem(join(dir, "otto-agent", "a1")), undefined);
    assert.equal((await stat(join(dir, "otto-agent", "a1"))).mode & 0o777, 0o700);
  });

  it("is closed to others when an earlier version left it open", async () => {
    const dir = await fresh();
    await mkdir(join(dir, "a1"), { mode: 0o755 });
    await chmod(join(dir, "a1"), 0o755);
    assert.equal(await workRootProblem(join(dir, "a1")), undefined);
    assert.equal((await stat(join(dir, "a1"))).mode & 0o777, 0o700);
  });

  it("is refused under a directory another user made first, or one anybody may write", async () => {
    const dir = await fresh();
    await mkdir(join(dir, "otto-agent"));
    await chown(join(dir, "otto-agent"), 65534, 65534);
    assert.match((await workRootProblem(join(dir, "otto-agent", "a1"))) ?? "", /otto-agent belongs to another user \(uid 65534\)/);
    const open = await fresh();
    await chmod(open, 0o777);
    assert.match((await workRootProblem(join(open, "a1"))) ?? "", /may be written by other users/);
  });
});
