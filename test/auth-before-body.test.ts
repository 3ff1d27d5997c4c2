// The token is checked before a request's body is read: a caller without a
// valid one is refused with 401 while its body is still on its way, the
// gateway's memory does not grow with what it was sent, and others are
// served meanwhile. One caller's bodies in flight are bounded.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import https from "node:https";
import { postJson, request, startTestOtto, waitFor, type TestOtto } from "./helpers/otto.ts";

const submitPath = "/otto.v1.RunService/SubmitRun";
// Each caller's bodies in flight (the default) and requests waiting for a place (set here).
const maxBodies = 8;
const maxWaiting = 32;

// JSON nested as deep as its size allows: costly to parse, and to hold once parsed.
function nestedJson(bytes: number): Buffer {
  const depth = Math.floor((bytes - 40) / 2);
  return Buffer.from(`{"requestId":"x","pipelineYaml":${"[".repeat(depth)}${"]".repeat(depth)}}`);
}

interface BodyInFlight {
  // Settles with the answer, and how much of the body had been written when it came.
  answer: Promise<{ status: number; json: any; sentBeforeAnswer: number }>;
  // Writes the rest of the body (for a body held back).
  finish(): void;
  abort(): void;
}

// A POST whose body is written `firstBytes` at first and the rest only on
// finish() (all of it at once when firstBytes covers it).
function sendBody(url: string, path: string, body: Buffer, firstBytes: number, token?: string): BodyInFlight {
  const target = new URL(path, url);
  let sent = 0;
  const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": body.length };
  if (token) headers.authorization = `Bearer ${token}`;
  const req = https.request(target, { method: "POST", headers, ca: readFileSync(caFile) });
  const answer = new Promise<{ status: number; json: any; sentBeforeAnswer: number }>((resolve, reject) => {
    req.on("response", (res) => {
      const sentBeforeAnswer = sent;
      const parts: Buffer[] = [];
      res.on("data", (part: Buffer) => parts.push(part));
      res.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8");
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, json, sentBeforeAnswer });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
  });
  const write = (part: Buffer) => {
    sent += part.length;
    req.write(part);
  };
  write(body.subarray(0, firstBytes));
  return {
    answer,
    finish() {
      if (sent < body.length) write(body.subarray(sent));
      req.end();
    },
    abort() {
      answer.catch(() => {});
      req.destroy();
    },
  };
}

let caFile: string;

// The answer to a body held back, which must come without the rest of it.
function answerOf(body: BodyInFlight, deadlineMs = 30_000) {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${deadlineMs} ms while the body was held back`)), deadlineMs);
  });
  return Promise.race([body.answer, late]).finally(() => clearTimeout(timer));
}

function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(/(\d+)/.exec(line)![1]) / 1024;
}

describe("authentication before the body", () => {
  let otto: TestOtto;
  const tokenWith = async (...scopes: string[]) => (await otto.client.admin.createToken({ name: `test ${scopes.join(" ")}`, scopes })).token;

  before(async () => {
    otto = await startTestOtto({ agents: 0, env: { OTTO_MAX_BODIES_WAITING_PER_CALLER: String(maxWaiting) } });
    caFile = otto.caFile!;
  });

  after(async () => {
    await otto?.stopAndClean();
  });

  it("refuses large bodies without a token unread, with 401, while others are served", async (t) => {
    const pid = otto.supervisor.pid("gateway")!;
    const body = nestedJson(3_800_000);
    // Warm up, so that what the gateway allocates for a first call is not counted.
    for (let i = 0; i < 3; i++) assert.equal((await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", {})).status, 200);
    const rssBefore = rssMiB(pid);
    let rssMax = rssBefore;
    const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssMiB(pid))), 20);
    try {
      // Ten held back after their first 64 KiB: the answer comes while the body is still being sent.
      const held = Array.from({ length: 10 }, () => sendBody(otto.gatewayUrl, submitPath, body, 64 * 1024));
      const answers = await Promise.all(held.map((b) => answerOf(b)));
      for (const answer of answers) {
        assert.equal(answer.status, 401);
        assert.equal(answer.json?.code, "unauthenticated");
        assert.match(answer.json.message, /needs a token/);
        assert.ok(answer.sentBeforeAnswer < body.length, "answered before the body was sent");
      }
      // An authorised call is answered while they are all still open.
      assert.equal((await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", {})).status, 200);
      for (const b of held) b.abort();

      // Ten sent whole at once: still refused, unparsed.
      const whole = Array.from({ length: 10 }, () => sendBody(otto.gatewayUrl, submitPath, body, body.length));
      const listed = postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", {});
      for (const b of whole) b.finish();
      for (const answer of await Promise.all(whole.map((b) => b.answer.catch((err: Error) => ({ status: 0, json: { code: err.message } }))))) {
        assert.equal(answer.json?.code, "unauthenticated");
        assert.equal(answer.status, 401);
      }
      assert.equal((await listed).status, 200);
    } finally {
      clearInterval(sampler);
    }
    rssMax = Math.max(rssMax, rssMiB(pid));
    // Twenty 3.8 MB bodies parsed would be hundreds of MiB.
    assert.ok(rssMax - rssBefore < 40, `the gateway grew from ${rssBefore.toFixed(0)} to ${rssMax.toFixed(0)} MiB`);
    t.diagnostic(`gateway RSS ${rssBefore.toFixed(1)} -> at most ${rssMax.toFixed(1)} MiB`);
  });

  it("refuses a wrong token the same way", async () => {
    const body = nestedJson(3_800_000);
    for (const token of ["otto_api_" + "A".repeat(43), "not-a-token"]) {
      const held = sendBody(otto.gatewayUrl, submitPath, body, 64 * 1024, token);
      const answer = await answerOf(held);
      held.abort();
      assert.equal(answer.status, 401);
      assert.equal(answer.json?.code, "unauthenticated");
      assert.ok(answer.sentBeforeAnswer < body.length, "answered before the body was sent");
    }
    // Too small a scope is refused unread too.
    const reader = await tokenWith("runs:read");
    const held = sendBody(otto.gatewayUrl, submitPath, body, 64 * 1024, reader);
    const answer = await answerOf(held);
    held.abort();
    assert.equal(answer.status, 403);
    assert.equal(answer.json?.code, "permission_denied");
    assert.ok(answer.sentBeforeAnswer < body.length);
  });

  it("asks for a body held back (Expect: 100-continue) only once its caller is admitted", async () => {
    const body = JSON.stringify({ pipelineYaml: "name: c\njobs:\n  one:\n    steps:\n      - run: 'true'\n".padEnd(2_000_000, "#") });
    const ask = (token: string | undefined) =>
      new Promise<{ status: number; invited: boolean; json: any }>((resolve, reject) => {
        const headers: Record<string, string | number> = { "content-type": "application/json", "content-length": body.length, expect: "100-continue" };
        if (token) headers.authorization = `Bearer ${token}`;
        const req = https.request(new URL(submitPath, otto.gatewayUrl), { method: "POST", headers, ca: readFileSync(caFile) });
        let invited = false;
        req.on("continue", () => {
          invited = true;
          req.end(body);
        });
        req.on("response", (res) => {
          const parts: Buffer[] = [];
          res.on("data", (part: Buffer) => parts.push(part));
          res.on("end", () => {
            req.destroy();
            resolve({ status: res.statusCode ?? 0, invited, json: JSON.parse(Buffer.concat(parts).toString("utf8")) });
          });
        });
        req.on("error", reject);
        req.flushHeaders();
      });
    const refused = await ask(undefined);
    assert.deepEqual([refused.status, refused.invited, refused.json.code], [401, false, "unauthenticated"]);
    const admitted = await ask(otto.adminToken);
    assert.equal(admitted.invited, true);
    // Past the gate, the body is read and judged: too long a pipeline.
    assert.equal(admitted.json.code, "resource_exhausted");
    assert.match(admitted.json.message, /pipeline_yaml/);
  });

  // Requests waiting for a place, unread, in one process (its otto_rpc_bodies_waiting).
  const waiting = async (url: string) => Number(/^otto_rpc_bodies_waiting (\d+)$/m.exec((await request(`${url}/metrics`)).text)?.[1] ?? NaN);

  it("makes a caller past its bodies in flight wait, unread, while others are served, and lets a burst of small requests through", async () => {
    const greedy = await tokenWith("runs:write");
    const other = await tokenWith("runs:write");
    // Forty requests of one token at once: a burst a tool may well send.
    const burst = await Promise.all(
      Array.from({ length: 40 }, () => postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", { pageSize: 1 }, { authorization: `Bearer ${greedy}` })),
    );
    assert.deepEqual([...new Set(burst.map((r) => r.status))], [200]);
    // Its maximum of bodies held half-sent, then one more sent whole: that one waits.
    const body = Buffer.from(JSON.stringify({ pipelineYaml: "x".repeat(200_000) }));
    const held = Array.from({ length: maxBodies }, () => sendBody(otto.gatewayUrl, submitPath, body, 1024, greedy));
    const next = sendBody(otto.gatewayUrl, submitPath, body, body.length, greedy);
    next.finish();
    await waitFor("the next body to wait for a place", async () => (await waiting(otto.gatewayUrl)) === 1);
    // Another token is served meanwhile.
    const others = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", {}, { authorization: `Bearer ${other}` });
    assert.equal(others.status, 200);
    // A place given back lets it in: its body is read and judged.
    held[0].abort();
    const answer = await next.answer;
    assert.notEqual(answer.json?.code, undefined);
    assert.doesNotMatch(answer.json.message, /at once/);
    for (const b of held) b.abort();
    await waitFor("the greedy token served again", async () => {
      const again = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", {}, { authorization: `Bearer ${greedy}` });
      return again.status === 200;
    });
  });

  it("refuses at once a caller without a token whose places and queue are full, by its address", async () => {
    const registryUrl = otto.registryUrl;
    const path = "/otto.v1.RegistryService/JoinAgent";
    const body = Buffer.from(JSON.stringify({ joinToken: "x".repeat(100), agentId: "agent-x" }).padEnd(200_000, " "));
    const held = Array.from({ length: maxBodies + maxWaiting }, () => sendBody(registryUrl, path, body, 1024));
    await waitFor("its queue to fill", async () => (await waiting(registryUrl)) === maxWaiting);
    const refused = sendBody(registryUrl, path, body, body.length);
    refused.finish();
    const answer = await refused.answer;
    assert.equal(answer.status, 429);
    assert.equal(answer.json?.code, "resource_exhausted");
    assert.match(answer.json.message, /8 bodies in flight and 32 waiting/);
    for (const b of held) b.abort();
    await waitFor("its queue to empty", async () => (await waiting(registryUrl)) === 0);
  });
});
