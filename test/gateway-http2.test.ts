// The gateway speaks HTTP/2 (chosen by ALPN) beside HTTP/1.1, for browsers:
// Connect calls unary and streaming, the plain-JSON stream form, webhooks
// and probes answer over it, and a request refused before its body is read
// (or cut off as too large) ends its own stream, not the session with the
// caller's other streams. Stopping the gateway ends its HTTP/2 streams.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http2 from "node:http2";
import { pipeline, submit, waitForRun } from "@otto/sdk";
import { postJson, startTestOtto, waitFor, type TestOtto } from "./helpers/otto.ts";

interface Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

// One request on `session`; `body` is written whole, or as `firstBytes`
// first and the rest once the answer's headers are in (a body still on
// its way when the server answers).
function send(session: http2.ClientHttp2Session, path: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": options.method ?? (options.body ? "POST" : "GET"), ":path": path, ...options.headers });
    let status = 0;
    let headers: http2.IncomingHttpHeaders = {};
    const parts: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      headers = h;
    });
    stream.on("data", (part: Buffer) => parts.push(part));
    stream.on("end", () => resolve({ status, headers, body: Buffer.concat(parts) }));
    // A stream closed by the server once its answer is complete (RST_STREAM
    // NO_ERROR, RFC 9113 8.1) may close before "end"; the answer is whole.
    stream.on("close", () => (status ? resolve({ status, headers, body: Buffer.concat(parts) }) : reject(new Error(`stream closed with code ${stream.rstCode}`))));
    stream.on("error", (err) => (status ? undefined : reject(err)));
    if (options.body) stream.end(options.body);
    else stream.end();
  });
}

// The Connect protocol's envelope around one JSON message.
function envelope(message: object): Buffer {
  const json = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(json.length, 1);
  return Buffer.concat([head, json]);
}

function unenvelope(body: Buffer): Array<{ end: boolean; json: any }> {
  const frames: Array<{ end: boolean; json: any }> = [];
  for (let at = 0; at + 5 <= body.length; ) {
    const length = body.readUInt32BE(at + 1);
    frames.push({ end: (body[at] & 0x02) !== 0, json: JSON.parse(body.subarray(at + 5, at + 5 + length).toString("utf8")) });
    at += 5 + length;
  }
  return frames;
}

describe("the gateway over HTTP/2", { timeout: 240_000 }, () => {
  let otto: TestOtto;
  let session: http2.ClientHttp2Session;
  let auth: Record<string, string>;
  let runId = "";

  before(async () => {
    otto = await startTestOtto();
    auth = { authorization: `Bearer ${otto.adminToken}` };
    // Node's client counts a body it still holds (one refused unread) against
    // its own session's memory (10 MB by default), and would refuse streams.
    session = http2.connect(otto.gatewayUrl, { ca: readFileSync(otto.caFile!), maxSessionMemory: 64 });
    await new Promise<void>((resolve, reject) => {
      session.once("connect", () => resolve());
      session.once("error", reject);
    });
    runId = (await submit(otto.client, pipeline("over h2").job("hello", { steps: ["echo hello"] }).build())).id;
    await waitForRun(otto.client, runId);
  });

  after(async () => {
    session?.destroy();
    await otto?.stopAndClean();
  });

  it("is chosen by ALPN", () => {
    assert.equal(session.alpnProtocol, "h2");
  });

  it("answers a unary Connect call with JSON", async () => {
    const answer = await send(session, "/otto.v1.AccountService/WhoAmI", { headers: { ...auth, "content-type": "application/json" }, body: Buffer.from("{}") });
    assert.equal(answer.status, 200, answer.body.toString());
    const { token } = JSON.parse(answer.body.toString());
    assert.equal(token.kind, "TOKEN_KIND_API", answer.body.toString());
    assert.ok(token.scopes.includes("admin"), answer.body.toString());
    assert.equal(answer.headers.connection, undefined);
  });

  it("streams a server-streaming call, in Connect's envelopes and as plain JSON lines", async () => {
    const enveloped = await send(session, "/otto.v1.RunService/WatchRun", {
      headers: { ...auth, "content-type": "application/connect+json" },
      body: envelope({ runId }),
    });
    assert.equal(enveloped.status, 200, enveloped.body.toString());
    const frames = unenvelope(enveloped.body);
    assert.ok(frames.length >= 2, enveloped.body.toString());
    assert.equal(frames.at(-1)!.end, true);
    assert.equal(frames.at(-1)!.json.error, undefined, JSON.stringify(frames.at(-1)));
    assert.ok(frames.some((frame) => !frame.end && JSON.stringify(frame.json).includes("SUCCEEDED")), enveloped.body.toString());

    const lines = await send(session, "/otto.v1.RunService/WatchRun", { headers: { ...auth, "content-type": "application/json" }, body: Buffer.from(JSON.stringify({ runId })) });
    assert.equal(lines.status, 200, lines.body.toString());
    assert.equal(lines.headers["content-type"], "application/x-ndjson");
    const messages = lines.body.toString().trim().split("\n").map((line) => JSON.parse(line));
    assert.ok(messages.length >= 1 && messages.every((m) => m.error === undefined), lines.body.toString());
  });

  it("answers /healthz, a webhook, cctray.xml and the web UI's page", async () => {
    const health = await send(session, "/healthz");
    assert.deepEqual([health.status, health.body.toString()], [200, "ok\n"]);
    const hook = Buffer.from(JSON.stringify({ zen: "hi" }));
    const headers = { "content-type": "application/json", "x-github-event": "ping", "x-github-delivery": "h2-1" };
    const overH2 = await send(session, "/hooks/github/no-such-project", { headers, body: hook });
    const overH1 = await postJson(otto.gatewayUrl, "/hooks/github/no-such-project", JSON.parse(hook.toString()), headers);
    assert.ok(overH2.status >= 400 && overH2.status < 500, `${overH2.status} ${overH2.body}`);
    assert.deepEqual([overH2.status, JSON.parse(overH2.body.toString())], [overH1.status, overH1.json]);
    // cctray.xml links runs at the address asked for, which HTTP/2 names in :authority.
    const cctray = await send(session, "/cctray.xml", { headers: auth });
    assert.equal(cctray.status, 200, cctray.body.toString());
    assert.ok(cctray.body.toString().includes(`webUrl="${otto.gatewayUrl}/runs/${runId}"`), cctray.body.toString());
    const page = await send(session, "/");
    assert.equal(page.status, 200);
    assert.match(page.body.toString(), /<script/);
  });

  it("refuses an unauthenticated large body before reading it, and the session's other streams go on", async () => {
    // A stream the session keeps open meanwhile.
    const watching = session.request({ ":method": "POST", ":path": "/otto.v1.RunService/WatchRuns", ...auth, "content-type": "application/connect+json" });
    watching.end(envelope({}));
    const firstFrame = new Promise<void>((resolve, reject) => {
      watching.once("data", () => resolve());
      watching.once("error", reject);
    });
    await firstFrame;

    const big = Buffer.alloc(8 * 1024 * 1024, "a");
    const refused = await send(session, "/otto.v1.RunService/SubmitRun", { headers: { "content-type": "application/json" }, body: big });
    assert.equal(refused.status, 401, refused.body.toString());
    assert.equal(JSON.parse(refused.body.toString()).code, "unauthenticated");

    // Too large for the gateway: read in part, then refused.
    const tooLarge = await send(session, "/otto.v1.RunService/SubmitRun", { headers: { ...auth, "content-type": "application/json" }, body: big });
    assert.ok(tooLarge.status >= 400, `${tooLarge.status} ${tooLarge.body}`);

    // Refused by the plain-JSON stream form, and as not a Connect call at all.
    const streamRefused = await send(session, "/otto.v1.RunService/WatchRuns", { headers: { "content-type": "application/json" }, body: big.subarray(0, 1024 * 1024) });
    assert.equal(streamRefused.status, 401, streamRefused.body.toString());
    const wrongType = await send(session, "/otto.v1.RunService/SubmitRun", { headers: { ...auth, "content-type": "text/plain" }, body: big.subarray(0, 1024 * 1024) });
    assert.equal(wrongType.status, 415, wrongType.body.toString());
    const wrongMethod = await send(session, "/otto.v1.RunService/SubmitRun", { method: "PUT", headers: auth, body: Buffer.from("{}") });
    assert.equal(wrongMethod.status, 405, wrongMethod.body.toString());

    assert.equal(session.destroyed, false);
    assert.equal(watching.closed, false, "the other stream is still open");
    const again = await send(session, "/otto.v1.AccountService/WhoAmI", { headers: { ...auth, "content-type": "application/json" }, body: Buffer.from("{}") });
    assert.equal(again.status, 200, again.body.toString());
    watching.close();
  });

  it("invites a body sent with Expect: 100-continue once the caller is admitted, and never otherwise", async () => {
    const ask = (headers: Record<string, string>) =>
      new Promise<{ invited: boolean; status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/otto.v1.AccountService/WhoAmI", "content-type": "application/json", expect: "100-continue", ...headers });
        let invited = false;
        let status = 0;
        const parts: Buffer[] = [];
        stream.on("continue", () => {
          invited = true;
          stream.end("{}");
        });
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.on("data", (part: Buffer) => parts.push(part));
        stream.on("close", () => (status ? resolve({ invited, status, body: Buffer.concat(parts).toString() }) : reject(new Error(`closed with ${stream.rstCode}`))));
        stream.on("error", () => {});
      });
    const admitted = await ask(auth);
    assert.deepEqual([admitted.invited, admitted.status], [true, 200], admitted.body);
    const refused = await ask({ authorization: "Bearer otto_nope" });
    assert.deepEqual([refused.invited, refused.status], [false, 401], refused.body);
  });

  it("stopping the gateway ends its HTTP/2 streams and sessions", async () => {
    const own = http2.connect(otto.gatewayUrl, { ca: readFileSync(otto.caFile!) });
    const closed = new Promise<void>((resolve) => own.once("close", () => resolve()));
    own.on("error", () => {});
    const watching = own.request({ ":method": "POST", ":path": "/otto.v1.RunService/WatchRuns", ...auth, "content-type": "application/connect+json" });
    watching.on("error", () => {});
    watching.on("data", () => {});
    const ended = new Promise<void>((resolve) => watching.once("close", () => resolve()));
    watching.end(envelope({}));
    await new Promise<void>((resolve) => watching.once("response", () => resolve()));
    const gateway = (JSON.parse(readFileSync(otto.processesFile, "utf8")).processes as Array<{ name: string; pid?: number }>).find((p) =>
      p.name.startsWith("gateway"),
    );
    assert.ok(gateway?.pid, readFileSync(otto.processesFile, "utf8"));
    process.kill(gateway.pid, "SIGTERM");
    await ended;
    await closed;
    await waitFor("the gateway to exit", () => {
      try {
        process.kill(gateway.pid!, 0);
        return false;
      } catch {
        return true;
      }
    });
  });
});
