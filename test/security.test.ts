// Otto secure by default: TLS, tokens and their scopes, identities between
// processes, agents' credentials, task-scoped log access and secrets.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { X509Certificate } from "node:crypto";
import { ensureLocalCa } from "@otto/kit/local-ca";
import { join } from "node:path";
import { createHash } from "node:crypto";
import pg from "pg";
import { toJsonString } from "@bufbuild/protobuf";
import { SecretInfoSchema, TokenInfoSchema } from "@otto/gen/v1/admin_service_pb";
import { RunState, pipeline, submitAndWait, waitForRun } from "@otto/sdk";
import { createOttoClient } from "@otto/sdk";
import { createTaskTokenSigner } from "@otto/kit/task-token";
import { postJson, request, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("security", () => {
  let otto: TestOtto;
  let db: pg.Client;
  const gate = () => join(otto.stepsDir, "gate");
  const urlOf = (name: string) => otto.supervisor.info().find((p) => p.name === name)!.url!;
  const tokenWith = async (...scopes: string[]) => (await otto.client.admin.createToken({ name: `test ${scopes.join(" ")}`, scopes })).token;
  const call = (base: string, method: string, body: unknown, token: string | null) =>
    postJson(base, `/otto.v1.${method}`, body, { authorization: token === null ? null : `Bearer ${token}` });
  const credentialOf = async (agent: string) => (await readFile(join(otto.dataDir, "agents", `${agent}.credential`), "utf8")).trim();

  before(async () => {
    // As if the launcher itself had been given storage credentials: they
    // must not reach the agents.
    process.env.OTTO_S3_SECRET_KEY = "launcher-only";
    try {
      otto = await startTestOtto({ agents: 2, agentLabels: (agent) => ["linux", `agent-${agent}`] });
    } finally {
      delete process.env.OTTO_S3_SECRET_KEY;
    }
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
  });

  after(async () => {
    await db?.end();
    await otto?.stopAndClean();
  });

  it("serves only TLS, with certificates from its own CA", async () => {
    assert.match(otto.gatewayUrl, /^https:\/\//);
    for (const p of otto.supervisor.info().filter((p) => p.url && p.name !== "s3" && !p.name.startsWith("agent-"))) assert.match(p.url!, /^https:/, p.name);
    // Agents serve no API: only their probes and metrics, on loopback.
    for (const p of otto.supervisor.info().filter((p) => p.name.startsWith("agent-"))) {
      assert.match(p.url!, /^http:\/\/127\.0\.0\.1:\d+$/, p.name);
      assert.equal((await request(`${p.url}/healthz`)).status, 200);
      assert.equal((await request(`${p.url}/otto.v1.AgentService/AcquireTask`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).status, 404);
    }
    const plain = await request(otto.gatewayUrl.replace("https:", "http:") + "/healthz").then(
      (r) => `answered ${r.status}`,
      (err: Error) => err.message,
    );
    assert.doesNotMatch(plain, /answered 200/, "plain HTTP gets no answer from a TLS port");
    const untrusted = await fetch(`${otto.gatewayUrl}/healthz`).then(
      () => "trusted",
      (err: Error) => String((err.cause as Error)?.message ?? err.message),
    );
    assert.match(untrusted, /certificate/i, "a client without Otto's CA refuses the certificate");
    assert.equal((await stat(otto.adminTokenFile!)).mode & 0o777, 0o600, "admin.token is private");
    assert.equal((await stat(join(otto.dataDir, "tls", "ca-key.pem"))).mode & 0o777, 0o600, "the CA key is private");
  });

  it("asks for a token, and says how to send one", async () => {
    const none = await call(otto.gatewayUrl, "RunService/ListRuns", {}, null);
    assert.equal(none.status, 401);
    assert.equal(none.json.code, "unauthenticated");
    assert.match(none.json.message, /Authorization: Bearer/);
    for (const bad of ["otto_api_nonsense", "not-even-a-token", "otto_api_" + "A".repeat(43)]) {
      const wrong = await call(otto.gatewayUrl, "RunService/ListRuns", {}, bad);
      assert.equal(wrong.json.code, "unauthenticated", bad);
      assert.match(wrong.json.message, /unknown, expired or revoked/);
    }
    const malformed = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", {}, { authorization: "Basic abc" });
    assert.equal(malformed.json.code, "unauthenticated");
    assert.match(malformed.json.message, /Bearer/);
  });

  it("keeps tokens only as hashes and holds each to its scopes", async () => {
    const reader = await tokenWith("runs:read");
    const writer = await tokenWith("runs:write");
    const { rows } = await db.query("SELECT hash FROM auth.tokens WHERE hash = $1", [createHash("sha256").update(reader).digest()]);
    assert.equal(rows.length, 1, "the hash is stored");
    const { rows: plain } = await db.query("SELECT 1 FROM auth.tokens t WHERE position($1::bytea in t.hash) > 0 OR t.name = $2", [Buffer.from(reader), reader]);
    assert.equal(plain.length, 0, "the token itself is not");

    const submitBody = { pipelineYaml: "name: scoped\njobs:\n  one:\n    steps:\n      - run: 'true'\n" };
    const refused = await call(otto.gatewayUrl, "RunService/SubmitRun", submitBody, reader);
    assert.equal(refused.status, 403);
    assert.equal(refused.json.code, "permission_denied");
    assert.match(refused.json.message, /needs the scope runs:write/);
    assert.equal((await call(otto.gatewayUrl, "RunService/ListRuns", {}, reader)).status, 200, "runs:read may list");

    const submitted = await call(otto.gatewayUrl, "RunService/SubmitRun", submitBody, writer);
    assert.equal(submitted.status, 200, submitted.text);
    assert.equal((await call(otto.gatewayUrl, "RunService/GetRun", { runId: submitted.json.run.id }, writer)).status, 200, "runs:write may read");
    const admin = await call(otto.gatewayUrl, "AdminService/ListTokens", {}, writer);
    assert.equal(admin.json.code, "permission_denied");
    assert.match(admin.json.message, /admin/);
    const listed = await otto.client.admin.listTokens({});
    assert.ok(listed.tokens.every((t) => !toJsonString(TokenInfoSchema, t).includes("otto_api_")), "listing shows no token values");
  });

  it("grants each scope what it implies: runs:write reads runs, agents:read only lists agents, admin everything", async () => {
    const unknownRun = { runId: crypto.randomUUID() };
    // Each method's answer when the scope lets the call in (a run that does
    // not exist is not_found only after admission).
    const methods: Record<string, { body: unknown; allowed: number }> = {
      "RunService/ListRuns": { body: {}, allowed: 200 },
      "RunService/CancelRun": { body: unknownRun, allowed: 404 },
      "AdminService/ListAgents": { body: {}, allowed: 200 },
      "AdminService/ListTokens": { body: {}, allowed: 200 },
      "AccountService/WhoAmI": { body: {}, allowed: 200 },
    };
    const lets: Record<string, string[]> = {
      "runs:read": ["RunService/ListRuns", "AccountService/WhoAmI"],
      "runs:write": ["RunService/ListRuns", "RunService/CancelRun", "AccountService/WhoAmI"],
      "agents:read": ["AdminService/ListAgents", "AccountService/WhoAmI"],
      admin: Object.keys(methods),
    };
    for (const [scope, allowed] of Object.entries(lets)) {
      const token = await tokenWith(scope);
      for (const [method, { body, allowed: status }] of Object.entries(methods)) {
        const answer = await call(otto.gatewayUrl, method, body, token);
        if (allowed.includes(method)) {
          assert.equal(answer.status, status, `${scope} may call ${method}: ${answer.text}`);
        } else {
          assert.equal(answer.status, 403, `${scope} may not call ${method}: ${answer.text}`);
          assert.equal(answer.json.code, "permission_denied");
        }
      }
    }
    const agentsReader = await tokenWith("agents:read");
    const refused = await call(otto.gatewayUrl, "RunService/ListRuns", {}, agentsReader);
    assert.match(refused.json.message, /may not call RunService\.ListRuns: it needs the scope runs:read/);
    await waitFor("both agents listed for agents:read", async () => {
      const agents = await call(otto.gatewayUrl, "AdminService/ListAgents", {}, agentsReader);
      return agents.json.agents?.map((a: { id: string }) => a.id).sort().join() === "agent-1,agent-2";
    });
    const me = await call(otto.gatewayUrl, "AccountService/WhoAmI", {}, agentsReader);
    assert.deepEqual(me.json.token.scopes, ["agents:read"]);
    const both = await tokenWith("runs:read", "agents:read");
    for (const method of ["RunService/ListRuns", "AdminService/ListAgents"]) assert.equal((await call(otto.gatewayUrl, method, {}, both)).status, 200, method);
    assert.equal((await call(otto.gatewayUrl, "RunService/CancelRun", unknownRun, both)).status, 403);
  });

  it("refuses a revoked token at once and an expired one when it expires", async () => {
    const { token, info } = await otto.client.admin.createToken({ name: "to revoke", scopes: ["runs:read"] });
    assert.equal((await call(otto.gatewayUrl, "RunService/ListRuns", {}, token)).status, 200);
    await otto.client.admin.revokeToken({ id: info!.id });
    const revoked = await call(otto.gatewayUrl, "RunService/ListRuns", {}, token);
    assert.equal(revoked.json?.code, "unauthenticated", "refused by the very next call");

    const expiring = await otto.client.admin.createToken({ name: "short-lived", scopes: ["runs:read"], ttlSeconds: 1 });
    assert.ok(expiring.info!.expiresAt, "a token with a ttl has an expiry");
    await waitFor("the short-lived token to expire", async () => (await call(otto.gatewayUrl, "RunService/ListRuns", {}, expiring.token)).status === 401, 10_000);
    const badScope = await otto.client.admin.createToken({ name: "x", scopes: ["runs:everything"] }).catch((err) => err);
    assert.match(String(badScope.message), /scopes\[0\]: must be in list \[runs:read, runs:write, agents:read, admin\]/);
  });

  it("gives agents no database or storage credentials", async () => {
    for (const agent of otto.supervisor.info().filter((p) => p.name.startsWith("agent-"))) {
      const environ = await readFile(`/proc/${agent.pid}/environ`, "utf8");
      const names = environ.split("\0").map((entry) => entry.split("=")[0]);
      for (const secret of ["DATABASE_URL", "OTTO_S3_SECRET_KEY", "OTTO_S3_ACCESS_KEY", "OTTO_SECRETS_KEY_FILE", "OTTO_TLS_KEY", "OTTO_REGISTRY_URL"]) {
        assert.ok(!names.includes(secret), `${agent.name} has no ${secret}`);
      }
      // Only the public URL, and the CA to check the gateway with.
      const env = Object.fromEntries(environ.split("\0").map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]));
      assert.equal(env.OTTO_URL, otto.gatewayUrl);
      assert.equal(env.OTTO_CA_FILE, otto.caFile);
      assert.ok(!environ.includes(otto.databaseUrl), `${agent.name} does not know the database URL`);
      assert.ok(!environ.includes("launcher-only"), `${agent.name} did not inherit the launcher's storage key`);
    }
  });

  it("keeps internal RPCs for Otto's own processes", async () => {
    const admin = otto.adminToken!;
    const coordinator = await call(urlOf("coordinator-1"), "RunService/ListRuns", {}, admin);
    assert.equal(coordinator.json.code, "permission_denied", "a user token cannot call the coordinator directly");
    const parser = await call(urlOf("parser"), "ParserService/ParsePipeline", { yaml: "name: x" }, admin);
    assert.equal(parser.json.code, "permission_denied");
    const registry = await call(urlOf("registry"), "RegistryService/Register", { service: "coordinator", instanceId: "evil", url: "https://127.0.0.1:1" }, admin);
    assert.equal(registry.json.code, "permission_denied");
    const objects = await call(urlOf("objects"), "LogStoreService/AppendLog", { runId: crypto.randomUUID(), job: "x", seq: 1, text: "x" }, admin);
    assert.equal(objects.json.code, "permission_denied");
    const anonymous = await call(urlOf("coordinator-1"), "AgentService/AcquireTask", { agentId: "agent-1" }, null);
    assert.equal(anonymous.json.code, "unauthenticated");
    // An agent may speak only for itself.
    const agent1 = await credentialOf("agent-1");
    const posing = await call(urlOf("registry"), "RegistryService/Register", { service: "coordinator", instanceId: "x", url: "https://127.0.0.1:1" }, agent1);
    assert.equal(posing.json.code, "permission_denied");
    assert.match(posing.json.message, /agent agent-1 may not register as coordinator/);
    const asOther = await call(urlOf("coordinator-1"), "AgentService/AcquireTask", { agentId: "agent-2", waitMs: 0 }, agent1);
    assert.equal(asOther.json.code, "permission_denied");
  });

  it("at the public endpoint, passes agents' calls on under their own identity and serves no internal method", async () => {
    const gateway = otto.gatewayUrl;
    const admin = otto.adminToken!;
    const agent1 = await credentialOf("agent-1");
    const internal: Array<[string, unknown, string]> = [
      ["RegistryService/Resolve", { service: "coordinator" }, agent1],
      ["RegistryService/Resolve", { service: "coordinator" }, admin],
      ["ParserService/ParsePipeline", { yaml: "name: x" }, admin],
      ["RetentionStoreService/ExpireObjects", { runIds: [crypto.randomUUID()], scope: "EXPIRY_SCOPE_RUN" }, admin],
      ["LogService/ReadLog", { runId: crypto.randomUUID(), job: "x" }, agent1],
    ];
    for (const [method, body, token] of internal) {
      const answer = await call(gateway, method, body, token);
      assert.ok(["permission_denied", "unimplemented"].includes(answer.json?.code), `${method} is not served outside: ${answer.status} ${answer.text}`);
    }
    const withApiToken = await call(gateway, "AgentService/AcquireTask", { agentId: "agent-1", waitMs: 0 }, admin);
    assert.equal(withApiToken.json.code, "permission_denied");
    assert.match(withApiToken.json.message, /takes an agent credential, not an API token/);
    assert.equal((await call(gateway, "AgentService/AcquireTask", { agentId: "agent-1", waitMs: 0 }, null)).json.code, "unauthenticated");
    const appendAsAgent = await call(gateway, "LogStoreService/AppendLog", { runId: crypto.randomUUID(), job: "x", seq: 1, text: "x" }, agent1);
    assert.equal(appendAsAgent.json.code, "permission_denied", "logs take a task token");
    // The gateway's own certificate lends the agent nothing: the registry
    // and the coordinator see agent-1.
    const posing = await call(gateway, "RegistryService/Register", { service: "coordinator", instanceId: "x", url: "https://127.0.0.1:1" }, agent1);
    assert.equal(posing.json.code, "permission_denied");
    assert.match(posing.json.message, /agent agent-1 may not register as coordinator/);
    const asOther = await call(gateway, "AgentService/AcquireTask", { agentId: "agent-2", waitMs: 0 }, agent1);
    assert.equal(asOther.json.code, "permission_denied");
    const own = await call(gateway, "AgentService/AcquireTask", { agentId: "agent-1", waitMs: 0 }, agent1);
    assert.equal(own.status, 200, own.text);
    const badJoin = await call(gateway, "RegistryService/JoinAgent", { joinToken: "otto_join_x", agentId: "agent-9" }, null);
    assert.equal(badJoin.json.code, "unauthenticated");
    const tlsOf = async (name: string) => ({
      cert: await readFile(join(otto.dataDir, "tls", `${name}.pem`)),
      key: await readFile(join(otto.dataDir, "tls", `${name}-key.pem`)),
      ca: await readFile(join(otto.dataDir, "tls", "ca.pem")),
    });
    const runId = crypto.randomUUID();
    const forged = createTaskTokenSigner(await tlsOf("gateway"))({ agentId: "agent-1", runId, job: "held", attempt: 1 }, 60);
    const forgedAppend = await call(gateway, "LogStoreService/AppendLog", { runId, job: "held", attempt: 1, seq: 1, text: "forged\n" }, forged);
    assert.equal(forgedAppend.json.code, "unauthenticated", "a task token signed by anything but a coordinator is refused at the gateway");
    const otherJob = createTaskTokenSigner(await tlsOf("coordinator-1"))({ agentId: "agent-1", runId, job: "other", attempt: 1 }, 60);
    const wrongTask = await call(gateway, "LogStoreService/AppendLog", { runId, job: "held", attempt: 1, seq: 1, text: "x\n" }, otherJob);
    assert.equal(wrongTask.json.code, "permission_denied");
    assert.match(wrongTask.json.message, /task token is for attempt 1 of job other/);
  });

  it("lets an agent act only on its own task, and a task token open only its own log", async () => {
    await rm(gate(), { force: true });
    const ir = pipeline("scoped-task")
      .job("held", { runsOn: ["agent-2"], steps: [`while [ ! -f ${gate()} ]; do sleep 0.05; done`] })
      .build();
    const run = await otto.client.runs.submitRun({ source: { case: "pipeline", value: ir } });
    const runId = run.run!.id;
    const task = await waitFor("the task to be assigned to agent-2", async () => {
      const { rows } = await db.query("SELECT id, attempt, agent_id FROM coordinator.tasks WHERE run_id = $1 AND status = 'assigned'", [runId]);
      return rows[0];
    });
    assert.equal(task.agent_id, "agent-2");
    const agent1 = await credentialOf("agent-1");
    const report = await call(urlOf("coordinator-1"), "AgentService/ReportSteps", { taskId: task.id, attempt: task.attempt, steps: [] }, agent1);
    assert.equal(report.json.code, "permission_denied", report.text);
    const complete = await call(
      urlOf("coordinator-1"),
      "AgentService/CompleteTask",
      { taskId: task.id, attempt: task.attempt, state: "RUN_STATE_SUCCEEDED" },
      agent1,
    );
    assert.equal(complete.json.code, "permission_denied");
    const stale = await call(urlOf("coordinator-1"), "AgentService/CompleteTask", { taskId: task.id, attempt: task.attempt + 5, state: "RUN_STATE_SUCCEEDED" }, await credentialOf("agent-2"));
    assert.equal(stale.json.code, "failed_precondition", "a stale attempt is refused as such");

    // Task tokens: one signed by a coordinator for another job, and one
    // signed by a process that is not a coordinator.
    const tlsOf = async (name: string) => ({
      cert: await readFile(join(otto.dataDir, "tls", `${name}.pem`)),
      key: await readFile(join(otto.dataDir, "tls", `${name}-key.pem`)),
      ca: await readFile(join(otto.dataDir, "tls", "ca.pem")),
    });
    const otherJob = createTaskTokenSigner(await tlsOf("coordinator-1"))({ agentId: "agent-1", runId, job: "other", attempt: 1 }, 60);
    const append = { runId, job: "held", attempt: 1, seq: 1000, text: "forged\n" };
    const wrongTask = await call(urlOf("objects"), "LogStoreService/AppendLog", append, otherJob);
    assert.equal(wrongTask.json.code, "permission_denied");
    assert.match(wrongTask.json.message, /task token is for attempt 1 of job other/);
    const forged = createTaskTokenSigner(await tlsOf("gateway"))({ agentId: "agent-1", runId, job: "held", attempt: 1 }, 60);
    assert.equal((await call(urlOf("objects"), "LogStoreService/AppendLog", append, forged)).json.code, "unauthenticated");

    await writeFile(gate(), "");
    const final = await waitForRun(otto.client, runId);
    assert.equal(final.state, RunState.SUCCEEDED, "the run itself is untouched");
  });

  it("stores secrets encrypted, gives them only to the jobs that name them, and masks them in logs", async () => {
    const value = "s3cr3t-Value-9000";
    await otto.client.admin.setSecret({ name: "DEPLOY_KEY", value });
    const { secrets } = await otto.client.admin.listSecrets({});
    assert.deepEqual(secrets.map((s) => s.name), ["DEPLOY_KEY"]);
    assert.ok(!secrets.some((s) => toJsonString(SecretInfoSchema, s).includes(value)));
    const { rows } = await db.query("SELECT sealed FROM coordinator.secrets WHERE name = 'DEPLOY_KEY'");
    assert.ok(!Buffer.from(rows[0].sealed).includes(Buffer.from(value)), "not stored in the clear");
    const tables = await db.query("SELECT count(*)::int AS n FROM information_schema.columns WHERE column_name ILIKE '%key%' AND table_schema = 'coordinator'");
    assert.equal(tables.rows[0].n, 0, "no key column anywhere in the coordinator's schema");

    const ir = pipeline("secrets")
      .job("uses", {
        secrets: ["DEPLOY_KEY"],
        steps: [
          `test "$DEPLOY_KEY" = "${"s3cr3t"}-Value-9000"`,
          'echo "key is $DEPLOY_KEY"',
          // Printed in pieces, as output may arrive: still one line.
          'printf "%s" "$(echo "$DEPLOY_KEY" | cut -c1-6)"; sleep 0.2; echo "$DEPLOY_KEY" | cut -c7-',
          'printf "%s" "$DEPLOY_KEY" | base64',
        ],
      })
      .job("other", { steps: ['test -z "${DEPLOY_KEY:-}"'] })
      .build();
    const final = await submitAndWait(otto.client, ir);
    assert.equal(final.state, RunState.SUCCEEDED, JSON.stringify(final.jobs.map((j) => [j.name, j.message])));
    let log = "";
    for await (const chunk of otto.client.logs.readLog({ runId: final.id, job: "uses" })) log += chunk.text;
    assert.ok(!log.includes(value), `the value never reaches the log:\n${log}`);
    assert.ok(!log.includes(Buffer.from(value).toString("base64")), "nor its base64");
    assert.match(log, /key is \*\*\*/);

    const missing = await call(otto.gatewayUrl, "RunService/SubmitRun", { pipelineYaml: "name: m\njobs:\n  a:\n    secrets: [NOPE]\n    steps:\n      - run: 'true'\n" }, otto.adminToken!);
    assert.equal(missing.json.code, "failed_precondition");
    assert.match(missing.json.message, /secrets that are not set: NOPE/);
    const badName = await otto.client.admin.setSecret({ name: "lower-case", value: "x" }).catch((err) => err);
    assert.match(String(badName.message), /environment variable name/);
  });

  it("lets an agent whose credential Otto forgot (a database reset) join again when it restarts", async () => {
    await db.query("DELETE FROM auth.tokens WHERE kind = 'agent' AND name = 'agent-2'");
    await db.query("SELECT pg_notify('otto_auth', '')");
    const before = otto.supervisor.info().find((p) => p.name === "agent-2")!.pid!;
    process.kill(before, "SIGKILL");
    await waitFor("agent-2 to be restarted", () => {
      const now = otto.supervisor.info().find((p) => p.name === "agent-2");
      return now?.pid !== undefined && now.pid !== before && now.url !== undefined;
    });
    const final = await submitAndWait(otto.client, pipeline("after-reset").job("one", { runsOn: ["agent-2"], steps: ["true"] }).build());
    assert.equal(final.state, RunState.SUCCEEDED, final.jobs[0].message);
    const { rows } = await db.query("SELECT count(*)::int AS n FROM auth.tokens WHERE kind = 'agent' AND name = 'agent-2' AND revoked_at IS NULL");
    assert.equal(rows[0].n, 1, "it has a new credential");
  });

  it("refuses a revoked agent at once, also when it tries to join again", async () => {
    const credential = await credentialOf("agent-1");
    const before = await call(urlOf("coordinator-1"), "AgentService/AcquireTask", { agentId: "agent-1", waitMs: 0 }, credential);
    assert.equal(before.status, 200, before.text);
    const { credentials } = await otto.client.admin.revokeAgent({ agentId: "agent-1" });
    assert.ok(credentials.length >= 1);
    const afterRevoke = await call(urlOf("coordinator-1"), "AgentService/AcquireTask", { agentId: "agent-1", waitMs: 0 }, credential);
    assert.equal(afterRevoke.json.code, "unauthenticated");
    const joinToken = (await readFile(join(otto.dataDir, "agent-join.token"), "utf8")).trim();
    const rejoin = await call(urlOf("registry"), "RegistryService/JoinAgent", { joinToken, agentId: "agent-1" }, null);
    assert.equal(rejoin.json.code, "permission_denied");
    assert.match(rejoin.json.message, /agent agent-1 was revoked/);
    const badJoin = await call(urlOf("registry"), "RegistryService/JoinAgent", { joinToken: "otto_join_x", agentId: "agent-9" }, null);
    assert.equal(badJoin.json.code, "unauthenticated");
    // The other agent goes on working, woken at once: a wake-up that reached
    // the revoked agent's waiting poll is passed on (lost, it would cost a
    // whole 20 s long poll).
    const started = Date.now();
    const final = await submitAndWait(otto.client, pipeline("after-revoke").job("one", { steps: ["true"] }).build());
    assert.equal(final.state, RunState.SUCCEEDED);
    assert.equal(final.jobs[0].agentId, "agent-2");
    assert.ok(Date.now() - started < 10_000, `the job ran after ${Date.now() - started} ms, not after a long poll ran out`);
  });
});

describe("the local CA", () => {
  it("is made once and reused across restarts, with a certificate per process naming its kind", async () => {
    const dir = await mkdtemp(join(tmpdir(), "otto-ca-"));
    try {
      const first = await ensureLocalCa(dir);
      const cert = await first.issue("coordinator-1", "coordinator");
      const caPem = await readFile(first.caFile, "utf8");
      const certPem = await readFile(cert.cert, "utf8");
      const again = await ensureLocalCa(dir);
      const reissued = await again.issue("coordinator-1", "coordinator");
      assert.equal(await readFile(again.caFile, "utf8"), caPem, "the same CA");
      assert.equal(await readFile(reissued.cert, "utf8"), certPem, "the same certificate");
      const parsed = new X509Certificate(certPem);
      assert.ok(parsed.checkIssued(new X509Certificate(caPem)) && parsed.verify(new X509Certificate(caPem).publicKey));
      assert.match(parsed.subjectAltName!, /URI:spiffe:\/\/otto\/coordinator\/coordinator-1/);
      assert.match(parsed.subjectAltName!, /IP Address:127\.0\.0\.1/);
      assert.equal((await stat(cert.key)).mode & 0o777, 0o600);
      const otherKind = await again.issue("coordinator-1", "gateway");
      assert.notEqual(await readFile(otherKind.cert, "utf8"), certPem, "a different identity gets a new certificate");
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("security opt-out", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ insecure: true });
  });
  after(async () => otto?.stopAndClean());

  it("serves plain HTTP without tokens only when told to, and says so loudly", async () => {
    assert.match(otto.gatewayUrl, /^http:\/\//);
    const client = createOttoClient({ baseUrl: otto.gatewayUrl });
    const final = await submitAndWait(client, pipeline("open").job("one", { steps: ["true"] }).build());
    assert.equal(final.state, RunState.SUCCEEDED);
    assert.match(await tailOfLog(otto, 400), /OTTO_INSECURE is set: serving plain HTTP with no authentication/);
  });
});
