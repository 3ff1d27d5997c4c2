// Agent ids are the server's: a join token does not buy a live agent's id,
// and a revoked id cannot come back spelt another way.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { RunState, pipeline, submitAndWait } from "@otto/sdk";
import { agentIdFromHost, agentIdProblem } from "@otto/kit/agent-id";
import { postJson, startTestOtto, type TestOtto } from "./helpers/otto.ts";

describe("agent identity", () => {
  let otto: TestOtto;
  let db: pg.Client;
  const urlOf = (name: string) => otto.supervisor.info().find((p) => p.name === name)!.url!;
  const call = (base: string, method: string, body: unknown, token: string | null) =>
    postJson(base, `/otto.v1.${method}`, body, { authorization: token === null ? null : `Bearer ${token}` });
  const joinToken = async () => (await readFile(join(otto.dataDir, "agent-join.token"), "utf8")).trim();
  const joinAs = async (agentId: string) => call(urlOf("registry"), "RegistryService/JoinAgent", { joinToken: await joinToken(), agentId }, null);
  const liveCredentials = async (agentId: string) =>
    (await db.query("SELECT count(*)::int AS n FROM auth.tokens WHERE kind = 'agent' AND name = $1 AND revoked_at IS NULL", [agentId])).rows[0].n;

  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await otto?.stopAndClean();
  });

  it("refuses a join under the id of a live agent, so its tasks stay its own", async () => {
    assert.equal(await liveCredentials("agent-1"), 1);
    const takeover = await joinAs("agent-1");
    assert.equal(takeover.json.code, "already_exists", takeover.text);
    assert.match(takeover.json.message, /agent agent-1 already has a credential/);
    assert.equal(takeover.json.credential, undefined, "no credential comes back");
    assert.equal(await liveCredentials("agent-1"), 1, "no second credential was made");
    // The live agent goes on getting its tasks.
    const final = await submitAndWait(otto.client, pipeline("still-mine").job("one", { steps: ["true"] }).build());
    assert.equal(final.state, RunState.SUCCEEDED, final.jobs[0].message);
    assert.equal(final.jobs[0].agentId, "agent-1");
  });

  it("lets one join under an id at a time", async () => {
    const answers = await Promise.all(Array.from({ length: 5 }, () => joinAs("racer-1")));
    assert.deepEqual(answers.map((a) => a.json.code ?? "ok").sort(), ["already_exists", "already_exists", "already_exists", "already_exists", "ok"]);
    assert.equal(await liveCredentials("racer-1"), 1);
  });

  it("refuses a revoked id in another case or with punctuation, and ids of any other spelling", async () => {
    const first = await joinAs("evil-1");
    assert.equal(first.status, 200, first.text);
    assert.match(first.json.credential, /^otto_agent_/);
    const { credentials } = await otto.client.admin.revokeAgent({ agentId: "evil-1" });
    assert.equal(credentials.length, 1);
    const again = await joinAs("evil-1");
    assert.equal(again.json.code, "permission_denied");
    assert.match(again.json.message, /agent evil-1 was revoked/);
    for (const variant of ["EVIL-1", "Evil-1", "evil-1.", "evil-1-", "-evil-1", "evil--1", "evil_1", "evil.1", " evil-1", "evil-1\n", "ｅvil-1", "x".repeat(64)]) {
      const answer = await joinAs(variant);
      assert.equal(answer.json.code, "invalid_argument", `${JSON.stringify(variant)}: ${answer.text}`);
      assert.equal(answer.json.credential, undefined);
    }
    assert.equal((await db.query("SELECT count(*)::int AS n FROM auth.tokens WHERE kind = 'agent' AND lower(name) LIKE '%evil%'")).rows[0].n, 1);
  });

  it("makes agents' default ids of the one spelling from any host name", () => {
    for (const host of ["Build.Example.COM", "MacBook-Pro.local", "--", "x".repeat(100), "host_1"]) {
      const id = agentIdFromHost(host, "a1b2c3");
      assert.equal(agentIdProblem(id), undefined, `${host} -> ${id}`);
      assert.match(id, /-a1b2c3$/);
    }
    assert.equal(agentIdFromHost("Build.Example.COM", "a1b2c3"), "build-example-com-a1b2c3");
    assert.match(agentIdProblem("Agent-1") ?? "", /lowercase letters and digits/);
  });
});
