// A corpus of bad input against a running Otto over raw HTTP(S): malformed
// JSON, wrong types, unknown enum values, huge bodies, deep and alias-bomb
// YAML, invalid UTF-8, bad tokens, wrong content types, unknown methods, path
// traversal, oversized log chunks and stale task attempts. Each is refused
// with the right Connect code and a message a person can act on, never a 5xx;
// no process crashes or restarts, and runs in flight meanwhile finish
// untouched.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { readFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { RunState, pipeline, waitForRun } from "@otto/sdk";
import { createTaskTokenSigner } from "@otto/kit/task-token";
import { isAlive, postJson, request, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

type ConnectCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "not_found"
  | "unimplemented";

// The HTTP status the Connect protocol gives each code.
const httpStatusOf: Record<ConnectCode, number> = {
  invalid_argument: 400,
  failed_precondition: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  unimplemented: 404,
  resource_exhausted: 429,
};

interface Reply {
  status: number;
  text: string;
  json: any;
  contentType: string;
  bytes?: Buffer;
}

interface Case {
  name: string;
  send: () => Promise<Reply>;
  // A Connect error (one of the codes when the README allows either), whose
  // message must match; or a refusal at the HTTP level (415, 405), which
  // Connect answers without a body.
  expect: { code: ConnectCode | ConnectCode[]; message: RegExp } | { bareStatus: 405 | 415; message?: RegExp };
  // Answered within this long (default 5 s): nothing hangs on bad input.
  withinMs?: number;
}

const MiB = 1024 * 1024;
const randomId = () => crypto.randomUUID();

describe("bad input", () => {
  let otto: TestOtto;
  let db: pg.Client;
  let ca: Buffer;
  const urlOf = (name: string) => {
    const url = otto.supervisor.info().find((p) => p.name === name)?.url;
    assert.ok(url, `${name} has a URL`);
    return url;
  };
  const gate = () => join(otto.stepsDir, "gate");
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const credentialOf = (agent: string) => readFileSync(join(otto.dataDir, "agents", `${agent}.credential`), "utf8").trim();

  // The runs in flight during the whole corpus, and what their logs must show.
  const inFlight: { runId: string; job: string; output: string[] }[] = [];
  // The task of the first held run, for the stale-attempt cases.
  let held: { id: string; attempt: number; owner: string; other: string; runId: string; job: string };
  let expiringToken: string;
  let pidsBefore: Map<string, number | undefined>;

  before(async () => {
    otto = await startTestOtto({ agents: 2 });
    ca = readFileSync(otto.caFile!);
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    await rm(gate(), { force: true });
    // Created first so that it has long expired when its case runs.
    expiringToken = (await otto.client.admin.createToken({ name: "expires at once", scopes: ["runs:read"], ttlSeconds: 1 })).token;

    const waitForGate = `while [ ! -f ${gate()} ]; do sleep 0.05; done`;
    for (const which of ["a", "b"]) {
      const ir = pipeline(`held-${which}`)
        .job("wait", { steps: [`echo started-${which}`, `${waitForGate}; echo done-${which}`] })
        .build();
      const { run } = await otto.client.runs.submitRun({ source: { case: "pipeline", value: ir } });
      inFlight.push({ runId: run!.id, job: "wait", output: [`started-${which}`, `done-${which}`] });
    }
    // Two jobs, the second queued behind the first until the gate opens.
    const chained = pipeline("held-chain")
      .job("first", { steps: [`${waitForGate}; echo first-done`] })
      .job("second", { needs: ["first"], steps: ["echo second-ran"] })
      .build();
    const { run: chainRun } = await otto.client.runs.submitRun({ source: { case: "pipeline", value: chained } });
    inFlight.push({ runId: chainRun!.id, job: "first", output: ["first-done"] }, { runId: chainRun!.id, job: "second", output: ["second-ran"] });
    // One that only echoes, submitted as YAML: it finishes while the corpus runs.
    const echoYaml = "name: echo\njobs:\n  say:\n    steps:\n      - run: printf 'hello from the echo run\\nline two\\n'\n";
    const { run: echoRun } = await otto.client.runs.submitRun({ source: { case: "pipelineYaml", value: echoYaml } });
    inFlight.push({ runId: echoRun!.id, job: "say", output: ["hello from the echo run", "line two"] });

    const heldRuns = [inFlight[0].runId, inFlight[1].runId, chainRun!.id];
    const tasks = await waitFor(
      "the held tasks to be assigned",
      async () => {
        const { rows } = await db.query(
          "SELECT id, run_id, job, attempt, agent_id FROM coordinator.tasks WHERE run_id = ANY($1) AND status = 'assigned'",
          [heldRuns],
        );
        return rows.length === 3 && rows;
      },
      20_000,
    );
    const first = tasks.find((t: { run_id: string }) => t.run_id === inFlight[0].runId);
    held = {
      id: first.id,
      attempt: first.attempt,
      owner: first.agent_id,
      other: first.agent_id === "agent-1" ? "agent-2" : "agent-1",
      runId: first.run_id,
      job: first.job,
    };
    pidsBefore = new Map(otto.supervisor.info().map((p) => [p.name, p.pid]));
  });

  after(async () => {
    if (otto && process.exitCode) console.log(await tailOfLog(otto));
    await writeFile(gate(), "").catch(() => {});
    await db?.end();
    await otto?.stopAndClean();
  });

  // --- ways of sending -------------------------------------------------------

  // A JSON body (an object, or text as it is) as curl would send it; the
  // gateway gets the admin token unless `headers.authorization` says otherwise.
  const post = async (base: string, path: string, body: unknown, headers: Record<string, string | null> = {}): Promise<Reply> => {
    const { status, text, json, contentType } = await postJson(base, path, body, headers);
    return { status, text, json, contentType: String(contentType) };
  };
  const gateway = (path: string, body: unknown, headers: Record<string, string | null> = {}) => post(otto.gatewayUrl, path, body, headers);
  // Raw bytes with any content type.
  const postBytes = async (base: string, path: string, body: Buffer | string, contentType: string | null, headers: Record<string, string> = {}) => {
    const response = await request(base + path, { method: "POST", headers: { "content-type": contentType, ...headers }, body });
    return toReply(response.status, response.text, response.headers["content-type"]);
  };
  // No body: Node's client would send a GET's or DELETE's body without a
  // Content-Length, which garbles the next request on the connection.
  const bodiless = async (method: string, path: string) => {
    const response = await request(otto.gatewayUrl + path, { method });
    return toReply(response.status, response.text, response.headers["content-type"]);
  };
  // A request exactly as given (URL parsing would resolve ../ first), on a
  // connection of its own unless an agent is given; the body is kept as bytes too.
  const rawRequest = (
    base: string,
    path: string,
    options: { method?: string; contentType?: string; body?: string | Buffer; agent?: https.Agent; timeoutMs?: number } = {},
  ): Promise<Reply> => {
    const target = new URL(base);
    const body = options.body ?? "{}";
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: target.hostname,
          port: target.port,
          path,
          method: options.method ?? "POST",
          ca,
          agent: options.agent ?? false,
          headers: {
            "content-type": options.contentType ?? "application/json",
            "content-length": Buffer.byteLength(body),
            authorization: `Bearer ${otto.adminToken}`,
          },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (part: Buffer) => parts.push(part));
          res.on("end", () => {
            const bytes = Buffer.concat(parts);
            resolve({ ...toReply(res.statusCode ?? 0, bytes.toString("utf8"), res.headers["content-type"]), bytes });
          });
          res.on("error", reject);
        },
      );
      const timeoutMs = options.timeoutMs ?? 10_000;
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  };
  function toReply(status: number, text: string, contentType: string | undefined): Reply {
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status, text, json, contentType: contentType ?? "" };
  }
  // JSON text with raw bytes spliced in where `marker` stands.
  const withBytes = (json: string, marker: string, bytes: number[]) => {
    const [head, tail] = json.split(marker);
    return Buffer.concat([Buffer.from(head), Buffer.from(bytes), Buffer.from(tail)]);
  };
  const coordinator = (method: string, body: unknown, agent: string) =>
    post(urlOf("coordinator-1"), `/otto.v1.AgentService/${method}`, body, bearer(credentialOf(agent)));
  const taskToken = () => {
    const tls = (file: string) => readFileSync(join(otto.dataDir, "tls", file));
    const sign = createTaskTokenSigner({ cert: tls("coordinator-1.pem"), key: tls("coordinator-1-key.pem"), ca: tls("ca.pem") });
    return sign({ agentId: held.owner, runId: held.runId, job: held.job, attempt: held.attempt }, 60);
  };
  const validPipeline = "name: fine\njobs:\n  a:\n    steps:\n      - run: echo ok\n";

  // --- the corpus --------------------------------------------------------------

  const cases: Case[] = [
    // 1. Malformed JSON
    {
      name: "malformed JSON to a unary method",
      send: () => gateway("/otto.v1.RunService/GetRun", '{"runId": '),
      expect: { code: "invalid_argument", message: /cannot decode message otto\.v1\.GetRunRequest from JSON/ },
    },
    {
      name: "malformed JSON to a streaming method (plain JSON form)",
      send: () => gateway("/otto.v1.LogService/ReadLog", '{"runId": '),
      expect: { code: "invalid_argument", message: /request body is not valid JSON/ },
    },
    {
      name: "a JSON array instead of an object",
      send: () => gateway("/otto.v1.RunService/GetRun", "[]"),
      expect: { code: "invalid_argument", message: /cannot decode message otto\.v1\.GetRunRequest from JSON/ },
    },
    {
      name: "a duplicated key",
      send: () => gateway("/otto.v1.RunService/GetRun", '{"runId": "a", "runId": "b"}'),
      expect: { code: "invalid_argument", message: /duplicate object key "runId"/ },
    },
    {
      name: "JSON nested 100000 deep",
      send: () => gateway("/otto.v1.RunService/GetRun", `{"runId": ${"[".repeat(100_000)}${"]".repeat(100_000)}}`),
      expect: { code: "invalid_argument", message: /run_id from JSON: expected string/ },
    },
    {
      name: "a binary (application/proto) body that is not protobuf",
      send: () => postBytes(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]), "application/proto"),
      expect: { code: "invalid_argument", message: /binary|protobuf|decode|parse/i },
    },

    // 2. Wrong types
    {
      name: "a string for an int32",
      send: () => gateway("/otto.v1.RunService/ListRuns", { pageSize: "ten" }),
      expect: { code: "invalid_argument", message: /page_size from JSON: expected number \(int32\), got "ten"/ },
    },
    {
      name: "a number for a string",
      send: () => gateway("/otto.v1.RunService/GetRun", { runId: 42 }),
      expect: { code: "invalid_argument", message: /run_id from JSON: expected string, got 42/ },
    },
    {
      name: "a fraction for an int32",
      send: () => gateway("/otto.v1.RunService/ListRuns", { pageSize: 1.5 }),
      expect: { code: "invalid_argument", message: /page_size from JSON: expected number \(int32\), got 1\.5/ },
    },
    {
      name: "an int32 out of range",
      send: () => gateway("/otto.v1.RunService/ListRuns", { pageSize: 1e20 }),
      expect: { code: "invalid_argument", message: /page_size from JSON: .*out of range/ },
    },
    {
      name: "a string for a boolean (plain JSON stream)",
      send: () => gateway("/otto.v1.LogService/ReadLog", { runId: randomId(), job: "wait", follow: "yes" }),
      expect: { code: "invalid_argument", message: /follow from JSON: expected boolean, got "yes"/ },
    },
    {
      name: "an object for the pipeline text",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: { name: "x" } }),
      expect: { code: "invalid_argument", message: /pipeline_yaml from JSON: expected string/ },
    },
    {
      name: "both sources of a run at once",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: validPipeline, pipeline: { name: "y" } }),
      expect: { code: "invalid_argument", message: /oneof set multiple times by pipeline_yaml and pipeline/ },
    },
    {
      name: "neither source of a run",
      send: () => gateway("/otto.v1.RunService/SubmitRun", {}),
      expect: { code: "invalid_argument", message: /send either "pipelineYaml" .* or "pipeline"/ },
    },

    // 3. Unknown enum values
    {
      name: "an unknown enum name as a filter (ListTokens kind)",
      send: () => gateway("/otto.v1.AdminService/ListTokens", { kind: "TOKEN_KIND_NOPE" }),
      expect: { code: "invalid_argument", message: /kind|TOKEN_KIND_NOPE/ },
    },
    {
      name: "an unknown enum name when creating (CreateToken kind)",
      send: () => gateway("/otto.v1.AdminService/CreateToken", { kind: "TOKEN_KIND_JOINN", name: "misspelt kind", scopes: ["runs:read"] }),
      expect: { code: "invalid_argument", message: /kind|TOKEN_KIND_JOINN/ },
    },
    {
      name: "an unknown enum number",
      send: () => gateway("/otto.v1.AdminService/ListTokens", { kind: 99 }),
      expect: { code: "invalid_argument", message: /kind: value must be one of the defined enum values/ },
    },
    {
      name: "an unknown run state number as a ListRuns filter",
      send: () => gateway("/otto.v1.RunService/ListRuns", { state: 42, pipeline: "hello" }),
      expect: { code: "invalid_argument", message: /state: value must be one of the defined enum values/ },
    },
    {
      name: "a pipeline name too long for a ListRuns filter",
      send: () => gateway("/otto.v1.RunService/ListRuns", { pipeline: "p".repeat(201) }),
      expect: { code: "invalid_argument", message: /invalid ListRunsRequest: pipeline: must be at most 200 characters/ },
    },
    {
      name: "an unknown task state from an agent (CompleteTask)",
      send: () => coordinator("CompleteTask", { taskId: randomId(), attempt: 1, state: "RUN_STATE_BOGUS" }, "agent-1"),
      expect: { code: "invalid_argument", message: /enum otto\.v1\.RunState from JSON: "RUN_STATE_BOGUS"/ },
    },

    // 4. Unknown fields: Connect ignores them, so the request is judged
    // without them (or, should unknown names ever be refused, for them).
    {
      name: "a misspelt field (runIdd)",
      send: () => gateway("/otto.v1.RunService/GetRun", { runIdd: randomId() }),
      expect: { code: "invalid_argument", message: /run_id: value is empty, which is not a valid UUID|"runIdd" is unknown/ },
    },
    {
      name: "a misspelt field in a plain JSON stream request",
      send: () => gateway("/otto.v1.LogService/ReadLog", { runIdd: randomId(), job: "wait" }),
      expect: { code: "invalid_argument", message: /key "runIdd" is unknown|run_id: value is empty/ },
    },

    // 5. Huge bodies
    {
      name: "a 5 MiB body to a unary method",
      send: () => gateway("/otto.v1.RunService/GetRun", { runId: "x".repeat(5 * MiB) }),
      expect: { code: "resource_exhausted", message: /larger than .*4194304/ },
    },
    {
      name: "a 300 KiB pipeline",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: validPipeline + "# padding\n".repeat(30 * 1024) }),
      expect: { code: "resource_exhausted", message: /pipeline_yaml: must be at most 262144 bytes/ },
    },
    {
      name: "a 2 MiB plain JSON body to a streaming method",
      // On a connection of its own: see the keep-alive test below.
      send: () => rawRequest(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { body: JSON.stringify({ runId: "x".repeat(2 * MiB), job: "wait" }) }),
      expect: { code: "resource_exhausted", message: /request body is larger than 1048576 bytes/ },
    },
    {
      name: "a binary envelope that claims 4 GiB",
      send: () =>
        rawRequest(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { contentType: "application/connect+proto", body: Buffer.from([0, 0xff, 0xff, 0xff, 0xff]) }),
      // A streaming call answers 200 and carries its error in the end-of-stream frame.
      expect: { code: "resource_exhausted", message: /larger than configured readMaxBytes 4194304/ },
    },
    {
      name: "a binary envelope whose protobuf does not decode, to a streaming method",
      send: () =>
        rawRequest(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", {
          contentType: "application/connect+proto",
          body: Buffer.from([0, 0, 0, 0, 3, 0x0a, 0xff, 0xff]),
        }),
      expect: { code: "invalid_argument", message: /^the request body is not a valid protobuf message for this method: premature EOF$/ },
    },
    {
      name: "an enveloped JSON stream request that is not JSON",
      send: () =>
        rawRequest(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", {
          contentType: "application/connect+json",
          body: Buffer.concat([Buffer.from([0, 0, 0, 0, 9]), Buffer.from("{not json")]),
        }),
      expect: { code: "invalid_argument", message: /JSON|json/ },
    },

    // 6. Deep and alias-bomb YAML
    {
      name: "YAML nested 5000 brackets deep",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: "name: deep\njobs: " + "[".repeat(5000) }),
      expect: { code: "invalid_argument", message: /pipeline\.yml:2:\d+: \[ \] and \{ \} nested more than 32 deep/ },
      withinMs: 2000,
    },
    {
      name: "YAML indented 400 columns deep",
      send: () => {
        const lines = ["name: deep", "jobs:"];
        for (let depth = 1; depth <= 200; depth++) lines.push(`${"  ".repeat(depth)}k${depth}:`);
        return gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: lines.join("\n") + " x\n" });
      },
      expect: { code: "invalid_argument", message: /indented more than 160 columns/ },
      withinMs: 2000,
    },
    {
      name: "a YAML alias bomb (billion laughs)",
      send: () => {
        // Each level holds ten aliases of the one before: 10^12 strings if expanded.
        const lines = ["name: bomb", "l0: &l0 lol"];
        for (let level = 1; level <= 12; level++) lines.push(`l${level}: &l${level} [${Array(10).fill(`*l${level - 1}`).join(", ")}]`);
        lines.push("jobs:", "  a:", "    steps:", "      - run: echo *l12");
        return gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: lines.join("\n") + "\n" });
      },
      expect: { code: "invalid_argument", message: /more than 100 aliases/ },
      withinMs: 2000,
    },

    // 7. Invalid UTF-8
    {
      name: "invalid UTF-8 in a run id",
      send: () => postBytes(otto.gatewayUrl, "/otto.v1.RunService/GetRun", withBytes('{"runId": "@"}', "@", [0xff, 0xfe]), "application/json"),
      expect: { code: "invalid_argument", message: /not valid UTF-8/ },
    },
    {
      name: "invalid UTF-8 inside an otherwise valid pipeline",
      send: () =>
        postBytes(
          otto.gatewayUrl,
          "/otto.v1.RunService/SubmitRun",
          withBytes(JSON.stringify({ pipelineYaml: validPipeline.replace("echo ok", "echo @") }), "@", [0xff, 0xfe]),
          "application/json",
        ),
      expect: { code: "invalid_argument", message: /UTF-8/i },
    },
    {
      name: "invalid UTF-8 in a binary (protobuf) string field",
      // GetRunRequest { run_id (1): <ff fe> }
      send: () => postBytes(otto.gatewayUrl, "/otto.v1.RunService/GetRun", Buffer.from([0x0a, 0x02, 0xff, 0xfe]), "application/proto"),
      expect: { code: "invalid_argument", message: /UTF-8/i },
    },
    {
      name: "invalid UTF-8 in a plain JSON stream request",
      send: () =>
        postBytes(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", withBytes(`{"runId": "${randomId()}", "job": "w@"}`, "@", [0xff, 0xfe]), "application/json"),
      expect: { code: "invalid_argument", message: /not valid UTF-8/ },
    },

    // 8. Tokens
    {
      name: "no token",
      send: () => gateway("/otto.v1.RunService/ListRuns", {}, { authorization: null }),
      expect: { code: "unauthenticated", message: /needs a token: send the header "Authorization: Bearer <token>"/ },
    },
    {
      name: "a garbage token",
      send: () => gateway("/otto.v1.RunService/ListRuns", {}, bearer("garbage")),
      expect: { code: "unauthenticated", message: /the token is unknown, expired or revoked/ },
    },
    {
      name: "a token of the wrong scheme",
      send: () => gateway("/otto.v1.RunService/ListRuns", {}, { authorization: "Basic YWRtaW46YWRtaW4=" }),
      expect: { code: "unauthenticated", message: /the Authorization header must be "Bearer <token>"/ },
    },
    {
      name: "an empty bearer token",
      send: () => gateway("/otto.v1.RunService/ListRuns", {}, { authorization: "Bearer " }),
      expect: { code: "unauthenticated", message: /must be "Bearer <token>"/ },
    },
    {
      name: "a well-formed but unknown token",
      send: () => gateway("/otto.v1.RunService/ListRuns", {}, bearer("otto_api_" + "A".repeat(43))),
      expect: { code: "unauthenticated", message: /the token is unknown, expired or revoked/ },
    },
    {
      name: "an expired token",
      send: async () => {
        await waitFor("the 1 s token to expire", async () => (await gateway("/otto.v1.RunService/ListRuns", {}, bearer(expiringToken))).status === 401, 10_000);
        return gateway("/otto.v1.RunService/ListRuns", {}, bearer(expiringToken));
      },
      expect: { code: "unauthenticated", message: /the token is unknown, expired or revoked/ },
      withinMs: 12_000,
    },
    {
      name: "a revoked token",
      send: async () => {
        const { token, info } = await otto.client.admin.createToken({ name: "revoked at once", scopes: ["runs:read"] });
        assert.equal((await gateway("/otto.v1.RunService/ListRuns", {}, bearer(token))).status, 200, "the token works before it is revoked");
        await otto.client.admin.revokeToken({ id: info!.id });
        return gateway("/otto.v1.RunService/ListRuns", {}, bearer(token));
      },
      expect: { code: "unauthenticated", message: /the token is unknown, expired or revoked/ },
    },
    {
      name: "the agents' join token used as an API token",
      send: async () => gateway("/otto.v1.RunService/ListRuns", {}, bearer((await readFile(join(otto.dataDir, "agent-join.token"), "utf8")).trim())),
      expect: { code: "unauthenticated", message: /unknown, expired or revoked/ },
    },
    {
      name: "a runs:read token submitting a run",
      send: async () => {
        const { token } = await otto.client.admin.createToken({ name: "reader", scopes: ["runs:read"] });
        return gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: validPipeline }, bearer(token));
      },
      expect: { code: "permission_denied", message: /may not call RunService\.SubmitRun: it needs the scope runs:write/ },
    },
    {
      name: "a runs:write token calling the admin service",
      send: async () => {
        const { token } = await otto.client.admin.createToken({ name: "writer", scopes: ["runs:write"] });
        return gateway("/otto.v1.AdminService/ListTokens", {}, bearer(token));
      },
      expect: { code: "permission_denied", message: /needs the scope admin/ },
    },
    {
      name: "an agents:read token listing runs",
      send: async () => {
        const { token } = await otto.client.admin.createToken({ name: "wall", scopes: ["agents:read"] });
        return gateway("/otto.v1.RunService/ListRuns", {}, bearer(token));
      },
      expect: { code: "permission_denied", message: /may not call RunService\.ListRuns: it needs the scope runs:read/ },
    },
    {
      name: "an API token without a scope",
      send: () => gateway("/otto.v1.AdminService/CreateToken", { name: "scopeless", scopes: [] }),
      expect: { code: "invalid_argument", message: /needs at least one scope: runs:read, runs:write, agents:read, admin/ },
    },
    {
      name: "an agent credential asking WhoAmI",
      send: () => gateway("/otto.v1.AccountService/WhoAmI", {}, bearer(credentialOf("agent-1"))),
      expect: { code: "permission_denied", message: /AccountService\.WhoAmI takes an API token, not an agent credential/ },
    },
    {
      name: "an agent credential calling the public API",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: validPipeline }, bearer(credentialOf("agent-1"))),
      expect: { code: "permission_denied", message: /takes an API token with runs:write, not an agent credential/ },
    },
    {
      name: "an API token calling an agent method of the coordinator",
      send: () =>
        post(urlOf("coordinator-1"), "/otto.v1.AgentService/HeartbeatTask", { taskId: held.id, attempt: held.attempt, agentId: held.owner }, bearer(otto.adminToken!)),
      expect: { code: "permission_denied", message: /AgentService\.HeartbeatTask takes an agent credential, not an API token/ },
    },
    {
      name: "an API token calling the coordinator's internal RunService",
      send: () => post(urlOf("coordinator-1"), "/otto.v1.RunService/ListRuns", {}, bearer(otto.adminToken!)),
      expect: { code: "permission_denied", message: /RunService\.ListRuns is internal: only Otto's own processes may call it/ },
    },
    {
      name: "an API token writing a log at the objects service",
      send: () =>
        post(urlOf("objects"), "/otto.v1.LogStoreService/AppendLog", { runId: held.runId, job: held.job, seq: 1, text: "forged\n" }, bearer(otto.adminToken!)),
      expect: { code: "permission_denied", message: /LogStoreService\.AppendLog takes a task token, not an API token/ },
    },
    {
      name: "no token at the coordinator",
      send: () => post(urlOf("coordinator-1"), "/otto.v1.AgentService/AcquireTask", { agentId: "agent-1" }, { authorization: null }),
      expect: { code: "unauthenticated", message: /Authorization: Bearer/ },
    },
    {
      name: "a garbage join token",
      send: () => post(urlOf("registry"), "/otto.v1.RegistryService/JoinAgent", { joinToken: "otto_join_nonsense", agentId: "intruder" }, { authorization: null }),
      expect: { code: "unauthenticated", message: /the join token is unknown, expired or revoked/ },
    },

    // 9. Content types and HTTP methods
    ...["text/plain", "application/xml", "application/x-www-form-urlencoded"].map(
      (type): Case => ({
        name: `Content-Type ${type}`,
        send: () => postBytes(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", "{}", type),
        expect: { bareStatus: 415, message: /send "Content-Type: application\/json"/ },
      }),
    ),
    {
      name: "no Content-Type",
      send: () => postBytes(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", "{}", null),
      expect: { bareStatus: 415, message: /Content-Type \(none\) is not supported/ },
    },
    {
      name: "GET on a method with side effects",
      send: () => bodiless("GET", "/otto.v1.RunService/SubmitRun?encoding=json&message=%7B%7D"),
      expect: { bareStatus: 405 },
    },
    {
      name: "PUT",
      send: () => rawRequest(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", { method: "PUT" }),
      expect: { bareStatus: 405, message: /PUT is not supported: call methods with POST/ },
    },
    {
      name: "DELETE",
      send: () => bodiless("DELETE", "/otto.v1.RunService/CancelRun"),
      expect: { bareStatus: 405, message: /DELETE is not supported/ },
    },
    {
      name: "a GET whose message is not JSON",
      send: () => bodiless("GET", "/otto.v1.RunService/ListRuns?encoding=json&message=%7B"),
      expect: { code: "invalid_argument", message: /cannot decode message otto\.v1\.ListRunsRequest from JSON/ },
    },
    {
      name: "a bad Connect timeout header",
      send: () => gateway("/otto.v1.RunService/ListRuns", {}, { "connect-timeout-ms": "soon" }),
      expect: { code: "invalid_argument", message: /invalid connect timeout value: soon/ },
    },

    // 10. Unknown methods and services
    {
      name: "an unknown method",
      send: () => gateway("/otto.v1.RunService/Nope", {}),
      expect: { code: "unimplemented", message: /no such method: POST \/otto\.v1\.RunService\/Nope/ },
    },
    {
      name: "an unknown service",
      send: () => gateway("/otto.v1.NopeService/Nope", {}),
      expect: { code: "unimplemented", message: /no such method: POST \/otto\.v1\.NopeService\/Nope/ },
    },
    {
      name: "a method of another process's service at the gateway",
      send: () => gateway("/otto.v1.ParserService/ParsePipeline", { yaml: "name: x" }),
      expect: { code: "unimplemented", message: /no such method/ },
    },

    // 11. Path traversal
    ...[
      "/otto.v1.RunService/../../etc/passwd",
      "/%2e%2e/%2e%2e/etc/passwd",
      "/otto.v1.RunService/..%2f..%2fetc%2fpasswd",
      "/healthz/../../../etc/passwd",
      "//etc/passwd",
    ].map(
      (path): Case => ({
        name: `the URL path ${path}`,
        send: () => rawRequest(otto.gatewayUrl, path),
        expect: { code: "unimplemented", message: /^no such method: POST / },
      }),
    ),
    {
      name: "a log of job ../../etc/passwd",
      send: () => gateway("/otto.v1.LogService/ReadLog", { runId: held.runId, job: "../../etc/passwd" }),
      expect: { code: "invalid_argument", message: /job: does not match regex pattern/ },
    },
    {
      name: "a run id with ..",
      send: () => gateway("/otto.v1.RunService/GetRun", { runId: "../../etc/passwd" }),
      expect: { code: "invalid_argument", message: /run_id: must be a valid UUID/ },
    },
    {
      name: "a log of run ../x",
      send: () => gateway("/otto.v1.LogService/ReadLog", { runId: `../${held.runId}`, job: "wait" }),
      expect: { code: "invalid_argument", message: /run_id: must be a valid UUID/ },
    },
    {
      name: "a job named ../evil in YAML",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipelineYaml: "name: x\njobs:\n  ../evil:\n    steps:\n      - run: echo hi\n" }),
      expect: { code: "invalid_argument", message: /pipeline\.yml:3:3: invalid job name '\.\.\/evil'/ },
    },
    {
      name: "a job named a/b in the IR",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipeline: { name: "x", jobs: [{ name: "a/b", steps: [{ run: "true" }] }] } }),
      expect: { code: "invalid_argument", message: /^invalid pipeline:\ninvalid job name 'a\/b': use letters, digits, '_' and '-'/ },
    },
    {
      name: "a job named .. in the IR",
      send: () => gateway("/otto.v1.RunService/SubmitRun", { pipeline: { name: "x", jobs: [{ name: "..", steps: [{ run: "true" }] }] } }),
      expect: { code: "invalid_argument", message: /^invalid pipeline:\ninvalid job name '\.\.': use letters, digits, '_' and '-'/ },
    },
    {
      name: "an artifact path that climbs out",
      send: () =>
        gateway("/otto.v1.RunService/SubmitRun", { pipeline: { name: "x", jobs: [{ name: "a", steps: [{ run: "true" }], artifacts: ["../../etc/passwd"] }] } }),
      expect: { code: "invalid_argument", message: /artifact path "\.\.\/\.\.\/etc\/passwd" must be relative/ },
    },
    {
      name: "a log write for job ../../x with a task token",
      send: () => post(urlOf("objects"), "/otto.v1.LogStoreService/AppendLog", { runId: held.runId, job: "../../x", seq: 1, text: "x" }, bearer(taskToken())),
      expect: { code: "invalid_argument", message: /job: does not match regex pattern/ },
    },

    // 12. Oversized log chunks (the README allows either code; the message names the limit)
    {
      name: "a log chunk over 1 MiB",
      send: () =>
        post(
          urlOf("objects"),
          "/otto.v1.LogStoreService/AppendLog",
          { runId: held.runId, job: held.job, attempt: held.attempt, seq: 1000, text: "x".repeat(MiB + 1) },
          bearer(taskToken()),
        ),
      expect: { code: ["resource_exhausted", "invalid_argument"], message: /text: must be at most 1048576 bytes|1048576 allowed/ },
    },
    {
      name: "a final log chunk over 1 MiB",
      send: () =>
        post(
          urlOf("objects"),
          "/otto.v1.LogStoreService/CloseLog",
          { runId: held.runId, job: held.job, attempt: held.attempt, finalSeq: 1000, finalText: "x".repeat(MiB + 1) },
          bearer(taskToken()),
        ),
      expect: { code: ["resource_exhausted", "invalid_argument"], message: /final_text: must be at most 1048576 bytes|1048576 allowed/ },
    },

    // 13. Stale attempts (the task's own agent) and another agent's task
    {
      name: "a heartbeat for the next attempt",
      send: () => coordinator("HeartbeatTask", { taskId: held.id, attempt: held.attempt + 1, agentId: held.owner }, held.owner),
      expect: { code: "failed_precondition", message: /attempt \d+ of task .* is not current/ },
    },
    {
      name: "a completion for the next attempt",
      send: () => coordinator("CompleteTask", { taskId: held.id, attempt: held.attempt + 1, state: "RUN_STATE_FAILED" }, held.owner),
      expect: { code: "failed_precondition", message: /attempt \d+ of task .* is no longer current \(task is assigned, attempt \d+\)/ },
    },
    {
      name: "a step report for a later attempt",
      send: () => coordinator("ReportSteps", { taskId: held.id, attempt: held.attempt + 5, steps: [{ stepIndex: 0, state: "RUN_STATE_FAILED" }] }, held.owner),
      expect: { code: "failed_precondition", message: /is no longer current/ },
    },
    {
      name: "a hand-back of the next attempt",
      send: () => coordinator("HandBackTask", { taskId: held.id, attempt: held.attempt + 1, agentId: held.owner }, held.owner),
      expect: { code: "failed_precondition", message: /is no longer current/ },
    },
    {
      name: "a completion of attempt 0",
      send: () => coordinator("CompleteTask", { taskId: held.id, attempt: 0, state: "RUN_STATE_FAILED" }, held.owner),
      expect: { code: "invalid_argument", message: /attempt: must be greater than or equal to 1/ },
    },
    {
      name: "another agent completing the current attempt",
      send: () => coordinator("CompleteTask", { taskId: held.id, attempt: held.attempt, state: "RUN_STATE_FAILED" }, held.other),
      expect: { code: "permission_denied", message: /task .* is not assigned to agent agent-\d/ },
    },
    {
      name: "another agent reporting steps of the current attempt",
      send: () => coordinator("ReportSteps", { taskId: held.id, attempt: held.attempt, steps: [{ stepIndex: 0, state: "RUN_STATE_FAILED" }] }, held.other),
      expect: { code: "permission_denied", message: /is not assigned to agent agent-\d/ },
    },
    {
      name: "another agent heartbeating as the owner",
      send: () => coordinator("HeartbeatTask", { taskId: held.id, attempt: held.attempt, agentId: held.owner }, held.other),
      expect: { code: "permission_denied", message: /this credential belongs to agent agent-\d, not agent-\d/ },
    },
    {
      name: "another agent heartbeating the current attempt as itself",
      send: () => coordinator("HeartbeatTask", { taskId: held.id, attempt: held.attempt, agentId: held.other }, held.other),
      expect: { code: "permission_denied", message: /agent-\d/ },
    },
    {
      name: "another agent handing back the current attempt as itself",
      send: () => coordinator("HandBackTask", { taskId: held.id, attempt: held.attempt, agentId: held.other }, held.other),
      expect: { code: "permission_denied", message: /agent-\d/ },
    },
    {
      name: "another agent handing back as the owner",
      send: () => coordinator("HandBackTask", { taskId: held.id, attempt: held.attempt, agentId: held.owner }, held.other),
      expect: { code: "permission_denied", message: /this credential belongs to agent agent-\d, not agent-\d/ },
    },

    // 14. Not found
    {
      name: "a run that does not exist",
      send: () => gateway("/otto.v1.RunService/GetRun", { runId: randomId() }),
      expect: { code: "not_found", message: /^run [0-9a-f-]{36} not found$/ },
    },
    {
      name: "canceling a run that does not exist",
      send: () => gateway("/otto.v1.RunService/CancelRun", { runId: randomId() }),
      expect: { code: "not_found", message: /^run [0-9a-f-]{36} not found$/ },
    },
    {
      name: "watching a run that does not exist",
      send: () => gateway("/otto.v1.RunService/WatchRun", { runId: randomId() }),
      expect: { code: "not_found", message: /not found/ },
    },
    {
      name: "the log of a job the run does not have",
      send: () => gateway("/otto.v1.LogService/ReadLog", { runId: held.runId, job: "nope" }),
      expect: { code: "not_found", message: /run [0-9a-f-]{36} has no job "nope"; its jobs are "wait"/ },
    },
    {
      name: "an attempt the job has not had",
      send: () => gateway("/otto.v1.LogService/ReadLog", { runId: held.runId, job: "wait", attempt: 9 }),
      expect: { code: "not_found", message: /job "wait" has had 1 attempt\(s\), not 9/ },
    },
    {
      name: "revoking a token that does not exist",
      send: () => gateway("/otto.v1.AdminService/RevokeToken", { id: randomId() }),
      expect: { code: "not_found", message: /no token has the id [0-9a-f-]{36}/ },
    },
    {
      name: "revoking an agent that never joined",
      send: () => gateway("/otto.v1.AdminService/RevokeAgent", { agentId: "nobody" }),
      expect: { code: "not_found", message: /agent nobody has never joined/ },
    },
    {
      name: "deleting a secret that does not exist",
      send: () => gateway("/otto.v1.AdminService/DeleteSecret", { name: "NO_SUCH_SECRET" }),
      expect: { code: "not_found", message: /no secret is named NO_SUCH_SECRET/ },
    },
    {
      name: "completing a task that does not exist",
      send: () => coordinator("CompleteTask", { taskId: randomId(), attempt: 1, state: "RUN_STATE_SUCCEEDED" }, "agent-1"),
      expect: { code: "not_found", message: /task [0-9a-f-]{36} not found/ },
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}`, { timeout: 30_000 }, async () => {
      const started = performance.now();
      let reply = await c.send();
      const ms = performance.now() - started;
      const shown = `${reply.status} ${reply.text.slice(0, 500)}`;
      assert.ok(reply.status < 500, `no 5xx: ${shown}`);
      assert.ok(ms < (c.withinMs ?? 5000), `answered in ${Math.round(ms)} ms`);
      assert.doesNotMatch(reply.text, /root:.*:0:0:/, "no file's contents");
      assert.doesNotMatch(reply.text, /\n\s+at |node:internal|node_modules/, `no stack trace: ${shown}`);
      if ("bareStatus" in c.expect) {
        assert.equal(reply.status, c.expect.bareStatus, shown);
        if (c.expect.message) assert.match(reply.json?.message ?? "", c.expect.message, shown);
        return;
      }
      const codes = Array.isArray(c.expect.code) ? c.expect.code : [c.expect.code];
      if (/^application\/connect\+/.test(reply.contentType)) {
        // A streaming call's error is the end-of-stream frame of a 200.
        assert.equal(reply.status, 200, shown);
        reply = { ...reply, json: endOfStreamError(reply.bytes ?? Buffer.from(reply.text)) };
      } else {
        assert.ok(codes.some((code) => httpStatusOf[code] === reply.status), `HTTP status of ${codes.join(" or ")}: ${shown}`);
        assert.match(reply.contentType, /^application\/json/, shown);
      }
      assert.ok(reply.json && typeof reply.json === "object", `a JSON error body: ${shown}`);
      assert.ok(codes.includes(reply.json.code), `code ${codes.join(" or ")}: ${shown}`);
      assert.equal(typeof reply.json.message, "string", shown);
      assert.match(reply.json.message, c.expect.message);
    });
  }

  // Answered 429 with "Connection: keep-alive", the connection must then be
  // fit for the next request (curl retries on a fresh one; Node does not).
  it("keeps the connection usable after refusing an oversized plain JSON stream body", async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const refused = await rawRequest(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { agent, body: JSON.stringify({ runId: "x".repeat(2 * MiB) }) });
      assert.equal(refused.status, 429, refused.text);
      assert.equal(refused.json?.code, "resource_exhausted");
      const next = await rawRequest(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", { agent, timeoutMs: 5000 }).catch((err: Error) => err);
      assert.ok(!(next instanceof Error), `the next request on the same connection fails: ${(next as Error).message}`);
      assert.equal(next.status, 200, next.text);
    } finally {
      agent.destroy();
    }
  });

  it("lets the runs in flight finish untouched", async () => {
    for (const runId of inFlight.slice(0, 3).map((r) => r.runId)) {
      const { run } = await otto.client.runs.getRun({ runId });
      assert.equal(run!.state, RunState.RUNNING, `${run!.name} was still in flight when the corpus ended`);
    }
    await writeFile(gate(), "");
    for (const runId of new Set(inFlight.map((r) => r.runId))) {
      const run = await waitForRun(otto.client, runId, AbortSignal.timeout(30_000));
      assert.equal(run.state, RunState.SUCCEEDED, `${run.name}: ${JSON.stringify(run.jobs.map((j) => [j.name, j.state, j.message]))}`);
      for (const job of run.jobs) assert.equal(job.attempt, 1, `${run.name}/${job.name} ran once, not handed back or retried`);
    }
    for (const { runId, job, output } of inFlight) {
      let text = "";
      for await (const chunk of otto.client.logs.readLog({ runId, job })) text += chunk.text;
      for (const line of output) assert.match(text, new RegExp(`\\| ${line}$`, "m"), `${job} of ${runId} logged "${line}"`);
      assert.doesNotMatch(text, /forged/);
    }
  });

  it("crashes and restarts no process, and each still answers /healthz", async () => {
    const processes = otto.supervisor.info();
    assert.ok(processes.length >= 8, processes.map((p) => p.name).join(", "));
    for (const p of processes) {
      assert.equal(p.restarts, 0, `${p.name} restarted`);
      assert.ok(p.pid !== undefined && p.pid === pidsBefore.get(p.name), `${p.name} is the same process`);
      assert.ok(isAlive(p.pid), `${p.name} is alive`);
      if (!p.url) continue;
      if (p.name === "s3") {
        // The development S3 server has no /healthz; unsigned, it refuses.
        assert.equal((await request(`${p.url}/`)).status, 403, "s3 answers");
        continue;
      }
      const health = await request(`${p.url}/healthz`);
      assert.equal(health.status, 200, `${p.name} /healthz`);
      assert.equal(health.text, "ok\n", `${p.name} /healthz`);
    }
    const log = await readFile(otto.logFile, "utf8");
    assert.doesNotMatch(log, /"msg":"unexpected error"/, "no handler failed unexpectedly");
  });
});

// The error of a Connect streaming response: the payload of its
// end-of-stream frame (flags 0x02) is {"error": {"code", "message"}}.
function endOfStreamError(body: Buffer): unknown {
  let error: unknown;
  for (let offset = 0; offset + 5 <= body.length; ) {
    const length = body.readUInt32BE(offset + 1);
    if (body[offset] & 0x02) error = JSON.parse(body.subarray(offset + 5, offset + 5 + length).toString("utf8") || "{}").error;
    offset += 5 + length;
  }
  return error;
}
