// As root, the embedded Postgres runs as the "postgres" user: from a
// checkout in a directory only root may enter, it still starts, its files
// bound where that user can reach them (launcher/postgres-reach.ts).
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { chmod, chown, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import pg from "pg";
import { startEmbeddedPostgres } from "@otto/launcher/embedded-postgres";
import { postgresBinaries, postgresOsUser } from "@otto/launcher/postgres-cluster";
import { postgresReach, reachable } from "@otto/launcher/postgres-reach";
import { freePort } from "@otto/launcher/system";

describe("the embedded Postgres under a directory only root may enter", { skip: process.getuid?.() !== 0 && "needs root" }, () => {
  const dirs: string[] = [];
  after(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const privateDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "otto-private-"));
    dirs.push(dir);
    await chmod(dir, 0o700);
    return dir;
  };
  const mirrorOf = (dir: string) => join("/tmp", `otto-postgres-${createHash("sha256").update(resolve(dir)).digest("hex").slice(0, 16)}`);

  it("starts, keeps its data where it was asked to, serves the launcher, and leaves no trace in /tmp", async () => {
    const dir = join(await privateDir(), "postgres");
    dirs.push(mirrorOf(dir));
    const db = await startEmbeddedPostgres(dir, await freePort());
    try {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      const { rows } = await client.query("SELECT current_setting('data_directory') AS data, current_user AS who");
      await client.end();
      assert.equal(rows[0].data, join(mirrorOf(dir), "cluster", "data"), "Postgres sees its data where it can reach it");
      assert.equal(rows[0].who, "postgres");
      assert.ok((await stat(join(dir, "data", "PG_VERSION"))).isFile(), "the files are in the directory asked for");
    } finally {
      await db.stop();
    }
    await assert.rejects(stat(mirrorOf(dir)), { code: "ENOENT" }, "the place it was bound at is gone once it stopped");
  });

  it("is started as before where the postgres user can reach everything", async (t) => {
    const bin = await postgresBinaries();
    const user = (await postgresOsUser())!;
    // This checkout's own binaries may be out of its reach (a checkout in a 0700 directory).
    if (!(await reachable(dirname(dirname(bin.postgres)), user))) return t.skip("this checkout is out of the postgres user's reach");
    const open = await mkdtemp(join(tmpdir(), "otto-open-"));
    dirs.push(open);
    await chmod(open, 0o755);
    const reach = await postgresReach(bin, join(open, "postgres"), user);
    assert.deepEqual(reach.bin, bin);
    assert.equal(reach.path(join(open, "postgres", "data")), join(open, "postgres", "data"));
  });

  it("refuses a place to bind it that somebody else made first", async () => {
    const dir = join(await privateDir(), "postgres");
    const squatted = mirrorOf(dir);
    dirs.push(squatted);
    await mkdir(squatted);
    await chown(squatted, 65534, 65534);
    await assert.rejects(postgresReach(await postgresBinaries(), dir, await postgresOsUser()), /must be a directory of root's that only root may change/);
  });
});
