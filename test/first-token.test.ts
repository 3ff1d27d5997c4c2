// The first token of an Otto the launcher did not set up: made in its
// database by `npm run first-token`, printed once, and taken by the gateway.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { postJson, startTestOtto, type TestOtto } from "./helpers/otto.ts";

const root = join(import.meta.dirname, "..");
const firstToken = (args: string[], env: Record<string, string>) =>
  spawnSync(process.execPath, ["--disable-warning=ExperimentalWarning", "--conditions=otto-source", "services/launcher/src/first-token.ts", ...args], {
    cwd: root,
    env: { PATH: process.env.PATH!, ...env },
    encoding: "utf8",
  });

describe("npm run first-token", () => {
  let otto: TestOtto;
  before(async () => (otto = await startTestOtto({ agents: 0 })));
  after(async () => otto?.stopAndClean());

  it("makes an admin token the gateway takes, or a join token", async () => {
    const made = firstToken(["ops"], { DATABASE_URL: otto.databaseUrl });
    assert.equal(made.status, 0, made.stderr);
    const token = made.stdout.trim();
    assert.match(token, /^otto_api_/);
    const listed = await postJson(otto.gatewayUrl, "/otto.v1.AdminService/ListTokens", {}, { authorization: `Bearer ${token}` });
    assert.equal(listed.status, 200, listed.text);
    assert.ok(listed.json.tokens.some((t: any) => t.name === "ops" && t.scopes.includes("admin")));
    const join = firstToken(["build hosts", "--join"], { DATABASE_URL: otto.databaseUrl });
    assert.match(join.stdout, /^otto_join_/);
  });

  it("says what is missing", () => {
    const none = firstToken(["ops"], {});
    assert.equal(none.status, 2);
    assert.match(none.stderr, /DATABASE_URL is not set\nusage:/);
    assert.match(firstToken(["ops", "--scope"], { DATABASE_URL: otto.databaseUrl }).stderr, /unknown flag --scope/);
  });
});
