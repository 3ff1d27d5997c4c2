// Otto's processes on several machines: a process binds OTTO_LISTEN and
// registers OTTO_ADVERTISE_URL, the URL its peers reach it at, which its
// certificate names. Here a second parser binds every address and advertises
// https://localhost:PORT; once the launcher's parser is stopped, pipelines
// are parsed by it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import pg from "pg";
import { RunState, submitAndWait } from "@otto/sdk";
import { ensureLocalCa } from "@otto/kit/local-ca";
import { freePort } from "@otto/launcher/system";
import { startTestOtto, waitFor, type TestOtto } from "./helpers/otto.ts";

const repoRoot = join(import.meta.dirname, "..");

function startParser(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  let output = "";
  const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--conditions=otto-source", "services/parser/src/main.ts"], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH!, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.setEncoding("utf8").on("data", (text: string) => (output += text));
  child.stderr!.setEncoding("utf8").on("data", (text: string) => (output += text));
  return { child, output: () => output };
}

describe("a process on another address: OTTO_LISTEN and OTTO_ADVERTISE_URL", () => {
  let otto: TestOtto;
  let tls: Record<string, string>;
  const children: ChildProcess[] = [];

  before(async () => {
    otto = await startTestOtto();
    const files = await (await ensureLocalCa(join(otto.dataDir, "tls"))).issue("parser-elsewhere", "parser");
    tls = { OTTO_TLS_CERT: files.cert, OTTO_TLS_KEY: files.key, OTTO_TLS_CA: files.ca, OTTO_REGISTRY_URL: otto.registryUrl };
  });

  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await otto?.stopAndClean();
  });

  it("refuses to bind every address without saying how it is reached", async () => {
    const { child, output } = startParser({ ...tls, OTTO_LISTEN: `0.0.0.0:${await freePort()}` });
    children.push(child);
    const code = await new Promise((resolve) => child.once("exit", resolve));
    assert.equal(code, 78, output());
    assert.match(output(), /OTTO_LISTEN binds every address \(0\.0\.0\.0\): set OTTO_ADVERTISE_URL/);
  });

  it("registers the advertised URL, where the gateway then reaches it", async () => {
    const port = await freePort();
    const advertised = `https://localhost:${port}`;
    const { child, output } = startParser({ ...tls, OTTO_LISTEN: `0.0.0.0:${port}`, OTTO_ADVERTISE_URL: advertised });
    children.push(child);
    await waitFor("the second parser to register", () => output().includes('"listening"') || child.exitCode !== null);
    assert.equal(child.exitCode, null, output());
    await otto.supervisor.stop("parser");
    const db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    try {
      const urls = await waitFor("the stopped parser's entry to go", async () => {
        const { rows } = await db.query("SELECT url FROM registry.instances WHERE service = 'parser'");
        return rows.length === 1 && rows.map((row) => row.url);
      });
      assert.deepEqual(urls, [advertised]);
    } finally {
      await db.end();
    }
    const run = await submitAndWait(otto.client, `name: parsed-elsewhere\njobs:\n  one:\n    steps:\n      - run: echo parsed by ${port}\n`);
    assert.equal(run.state, RunState.SUCCEEDED);
    assert.equal(run.name, "parsed-elsewhere");
  });
});
