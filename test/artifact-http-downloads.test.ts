// GET /artifacts/{run}/{job}/{path}: an artifact's bytes through the
// gateway for a web page, with its bearer token in a header. First the
// route on a bare HTTP server, against a real HTTP server standing in for
// storage (streaming, a caller that leaves, storage that fails or stalls);
// then through a real Otto, for artifacts real jobs stored.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { once } from "node:events";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { GetArtifactUrlResponseSchema } from "@otto/gen/v1/artifact_service_pb";
import type { Caller } from "@otto/kit/caller";
import { createLogger } from "@otto/kit/log";
import { artifactDownloads, encodeFilename } from "@otto/gateway/artifact-downloads";
import { RunState, artifactDownloadPath, pipeline, submitAndWait } from "@otto/sdk";
import { startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

// A request with the path exactly as given (no normalisation of ".." or
// escapes), read whole.
function get(base: string, path: string, options: { method?: string; headers?: Record<string, string>; ca?: Buffer } = {}): Promise<Answer> {
  const url = new URL(base);
  const transport = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    transport
      .request({ host: url.hostname, port: url.port, path, method: options.method ?? "GET", headers: options.headers, ca: options.ca }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (part: Buffer) => parts.push(part));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        res.on("error", reject);
      })
      .on("error", reject)
      .end();
  });
}

const errorOf = (answer: Answer) => {
  assert.match(String(answer.headers["content-type"]), /^application\/json/, `a JSON error: ${answer.body}`);
  const { error } = JSON.parse(answer.body.toString("utf8"));
  assert.equal(typeof error, "string");
  return error as string;
};

describe("the artifact download route, against a stand-in for storage", () => {
  const runId = "5d0c6a8e-1b1f-4c55-9a5e-0c7f6f1d2a10";
  const idleMs = 300;
  const whole = Buffer.alloc(300_000, "abcdefghij");
  // What storage says the held objects' length is; it sends a first part at once.
  const heldBytes = 64 * 1024 * 1024;
  let storage: http.Server;
  let gateway: http.Server;
  let storageBase = "";
  let base = "";
  // The storage requests of the "held" object: each answered with a first
  // part, then held open until the test says.
  const held: Array<{ res: http.ServerResponse; closed: Promise<unknown> }> = [];
  const reader = { authorization: "Bearer otto_api_reader" };

  before(async () => {
    storage = http.createServer((req, res) => {
      const name = new URL(req.url!, "http://x").pathname.slice(1);
      if (name === "whole.bin") return res.writeHead(200, { "content-length": whole.length }).end(whole);
      if (name === "broken.bin") return res.writeHead(500).end("storage trouble");
      if (name === "silent.bin") return; // never answers
      if (name === "held.bin" || name === "stalls.bin") {
        res.writeHead(200, { "content-length": heldBytes });
        res.write(Buffer.alloc(64 * 1024, 1));
        held.push({ res, closed: once(req.socket, "close") });
        return;
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => storage.listen(0, "127.0.0.1", resolve));
    storageBase = `http://127.0.0.1:${(storage.address() as AddressInfo).port}`;

    const callers: Record<string, Caller> = {
      otto_api_reader: { kind: "api", tokenId: "1", name: "reader", scopes: ["runs:read"] },
      otto_api_wall: { kind: "api", tokenId: "2", name: "wall", scopes: ["agents:read"] },
    };
    const route = artifactDownloads({
      artifactUrl: async (req) => {
        if (req.name === "missing.txt") throw new ConnectError(`run ${req.runId} has no artifact missing.txt of job ${req.job}`, Code.NotFound);
        if (req.name === "objects-down.txt") throw new ConnectError("no objects service", Code.Unavailable);
        // A port nothing listens on, for unreachable storage.
        const url = req.name === "unreachable.bin" ? "http://127.0.0.1:1/x" : `${storageBase}/${req.name.replace(/^.*\//, "")}`;
        return create(GetArtifactUrlResponseSchema, { url, artifact: { runId: req.runId, job: req.job, attempt: req.attempt || 1, name: req.name } });
      },
      credentials: { verify: (token) => callers[token] },
      log: createLogger("artifact-downloads-test"),
      insecure: false,
      storageIdleTimeoutMs: idleMs,
    });
    gateway = http.createServer((req, res) => {
      if (!route(req, res)) res.writeHead(418).end("not the route's");
    });
    await new Promise<void>((resolve) => gateway.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(gateway.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const { res } of held) res.destroy();
    storage.closeAllConnections();
    gateway.closeAllConnections();
    await Promise.all([new Promise((r) => storage.close(r)), new Promise((r) => gateway.close(r))]);
  });

  it("passes storage's bytes on with its length, and leaves other paths alone", async () => {
    const answer = await get(base, `/artifacts/${runId}/build/dist/whole.bin`, { headers: reader });
    assert.equal(answer.status, 200, answer.body.toString());
    assert.ok(answer.body.equals(whole));
    assert.equal(answer.headers["content-length"], String(whole.length));
    assert.equal(answer.headers["content-disposition"], "attachment; filename*=UTF-8''whole.bin");
    for (const path of ["/artifacts", "/runs/x", "/ui/app.js", "/otto.v1.ArtifactService/GetArtifactUrl"]) {
      assert.equal((await get(base, path)).status, 418, path);
    }
  });

  it("sends the first bytes before storage has sent the rest, and closes storage's answer when the caller leaves", async () => {
    const before = held.length;
    const request = http.get(`${base}/artifacts/${runId}/build/held.bin`, { headers: reader });
    const [response] = (await once(request, "response")) as [http.IncomingMessage];
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers["content-length"], String(heldBytes));
    const [first] = (await once(response, "data")) as [Buffer];
    assert.ok(first.length > 0, "a first part, while storage still holds the rest");
    assert.equal(held.length, before + 1);
    request.destroy();
    await held[before].closed;
  });

  it("answers 502 when storage refuses, 503 when it cannot be reached or sends nothing, and cuts a download storage stops", async () => {
    const refused = await get(base, `/artifacts/${runId}/build/broken.bin`, { headers: reader });
    assert.equal(refused.status, 502);
    assert.match(errorOf(refused), /storage answered HTTP 500/);
    const unreachable = await get(base, `/artifacts/${runId}/build/unreachable.bin`, { headers: reader });
    assert.equal(unreachable.status, 503);
    assert.match(errorOf(unreachable), /storage cannot be reached now .*try again/);
    const silent = await get(base, `/artifacts/${runId}/build/silent.bin`, { headers: reader });
    assert.equal(silent.status, 503);
    assert.match(errorOf(silent), new RegExp(`storage sent nothing for ${idleMs} ms`));
    const objectsDown = await get(base, `/artifacts/${runId}/build/objects-down.txt`, { headers: reader });
    assert.equal(objectsDown.status, 503);
    assert.match(errorOf(objectsDown), /cannot be looked up now; try again/);
    const missing = await get(base, `/artifacts/${runId}/build/missing.txt`, { headers: reader });
    assert.equal(missing.status, 404);
    assert.match(errorOf(missing), /has no artifact missing\.txt of job build/);

    // Storage sends a first part and then nothing: the caller, ready for
    // more, sees the download break off short of its length.
    const before = held.length;
    const request = http.get(`${base}/artifacts/${runId}/build/stalls.bin`, { headers: reader }).on("error", () => {});
    const [response] = (await once(request, "response")) as [http.IncomingMessage];
    assert.equal(response.statusCode, 200);
    let received = 0;
    response.on("data", (part: Buffer) => (received += part.length));
    const broke = new Promise((resolve) => response.on("error", resolve));
    await new Promise((resolve) => response.on("close", resolve));
    assert.equal(response.complete, false, "cut short");
    assert.match(String(await broke), /aborted/);
    assert.ok(received < heldBytes);
    await held[before].closed;
  });

  it("keeps a download going while its caller reads slowly, however long", async () => {
    const before = held.length;
    const request = http.get(`${base}/artifacts/${runId}/build/held.bin`, { headers: reader });
    const [response] = (await once(request, "response")) as [http.IncomingMessage];
    response.pause();
    // Far more than the sockets between here and the caller hold: the
    // paused caller holds the rest back.
    const { res } = held[before];
    const early = 40 * 1024 * 1024;
    res.write(Buffer.alloc(early - 64 * 1024, 2));
    // Longer than the idle timeout, storage held back by the caller alone.
    await new Promise((resolve) => setTimeout(resolve, idleMs * 4));
    let received = 0;
    response.on("data", (part: Buffer) => (received += part.length));
    response.resume();
    while (received < early && !response.destroyed) await Promise.race([once(response, "data"), once(response, "close")]);
    assert.equal(received, early, "every byte storage sent arrived");
    res.end(Buffer.alloc(heldBytes - early, 3));
    await once(response, "end");
    assert.equal(received, heldBytes);
    assert.ok(response.complete);
  });

  it("asks for a token with runs:read, takes only GET and HEAD, and refuses a malformed address", async () => {
    const none = await get(base, `/artifacts/${runId}/build/whole.bin`);
    assert.equal(none.status, 401);
    assert.equal(none.headers["www-authenticate"], 'Bearer realm="Otto"');
    assert.match(errorOf(none), /send an API token with runs:read/);
    const wall = await get(base, `/artifacts/${runId}/build/whole.bin`, { headers: { authorization: "Bearer otto_api_wall" } });
    assert.equal(wall.status, 403);
    assert.match(errorOf(wall), /this needs an API token with runs:read/);
    const posted = await get(base, `/artifacts/${runId}/build/whole.bin`, { method: "POST", headers: reader });
    assert.equal(posted.status, 405);
    assert.equal(posted.headers.allow, "GET, HEAD");
    const malformed = {
      [`/artifacts/${runId}/build`]: /the address is \/artifacts\/\{run id\}\/\{job\}\/\{artifact path\}/,
      [`/artifacts/${runId}//whole.bin`]: /the address is/,
      [`/artifacts/not-a-run/build/whole.bin`]: /invalid GetArtifactUrlRequest: run_id: must be a valid UUID/,
      [`/artifacts/${runId}/bad%20job/whole.bin`]: /invalid GetArtifactUrlRequest: job: /,
      [`/artifacts/${runId}/build/..%2F..%2Fetc%2Fpasswd`]: /must be relative/,
      [`/artifacts/${runId}/build/dist/../x`]: /must be relative/,
      [`/artifacts/${runId}/build/%E0%A4%A`]: /malformed %-escape/,
      [`/artifacts/${runId}/build/whole.bin?attempt=two`]: /attempt must be an attempt's number .*not "two"/,
      [`/artifacts/${runId}/build/whole.bin?attempt=-1`]: /attempt must be/,
    };
    for (const [path, message] of Object.entries(malformed)) {
      const answer = await get(base, path, { headers: reader });
      assert.equal(answer.status, 400, path);
      assert.match(errorOf(answer), message, path);
    }
  });

  it("encodes a file name as RFC 8187 asks", () => {
    assert.equal(encodeFilename("app.tar.gz"), "app.tar.gz");
    assert.equal(encodeFilename("rapport d'été (1)*.txt"), "rapport%20d%27%C3%A9t%C3%A9%20%281%29%2A.txt");
  });
});

describe("artifact downloads through a real Otto", () => {
  let otto: TestOtto;
  let ca: Buffer;
  let runId: string;
  let adminHeaders: Record<string, string>;
  const tokenFor = async (scope: string) => (await otto.client.admin.createToken({ name: `downloads ${scope}`, scopes: [scope] })).token;
  // What storage holds, fetched as GetArtifactUrl's callers fetch it.
  const fromStorage = async (job: string, name: string, attempt = 0) => {
    const { url } = await otto.client.artifacts.getArtifactUrl({ runId, job, name, attempt });
    return Buffer.from(await (await fetch(url)).arrayBuffer());
  };
  const download = (path: string, options: { method?: string; headers?: Record<string, string> } = {}) =>
    get(otto.gatewayUrl, path, { ca, ...options, headers: options.headers ?? adminHeaders });

  before(async () => {
    // A download from storage that gets nothing for a second fails.
    otto = await startTestOtto({ agents: 1, agentSlots: 3, env: { OTTO_S3_IDLE_TIMEOUT_MS: "1000" } });
    ca = readFileSync(otto.caFile!);
    adminHeaders = { authorization: `Bearer ${otto.adminToken}` };
    // Attempt 1 stores its artifact and fails; attempt 2 stores another and succeeds.
    const ir = pipeline("downloads")
      .job("build", {
        retry: 1,
        artifacts: ["dist/app.tar.gz"],
        steps: [`mkdir -p dist && { echo "attempt $OTTO_ATTEMPT"; head -c 3000000 /dev/urandom; } > dist/app.tar.gz && [ "$OTTO_ATTEMPT" = 2 ]`],
      })
      .job("test", { matrix: { node: ["20", "22"] }, artifacts: ["out.txt"], steps: ['echo "built for $MATRIX_NODE" > out.txt'] })
      .build();
    const run = await submitAndWait(otto.client, ir);
    assert.equal(run.state, RunState.SUCCEEDED, run.jobs.map((j) => `${j.name}: ${j.message}`).join("\n"));
    runId = run.id;
  });
  after(async () => {
    if (otto && process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("serves an artifact byte for byte, the latest attempt's or the one asked for, with the headers a browser needs", async () => {
    const latest = await download(`/artifacts/${runId}/build/dist/app.tar.gz`);
    assert.equal(latest.status, 200, latest.body.toString());
    assert.ok(latest.body.equals(await fromStorage("build", "dist/app.tar.gz")), "the bytes storage holds");
    assert.ok(latest.body.subarray(0, 10).toString() === "attempt 2\n", "the latest attempt's");
    assert.equal(latest.headers["content-type"], "application/octet-stream");
    assert.equal(latest.headers["content-length"], String(latest.body.length));
    assert.equal(latest.headers["content-disposition"], "attachment; filename*=UTF-8''app.tar.gz");
    assert.equal(latest.headers["cache-control"], "no-store");
    assert.equal(latest.headers["x-content-type-options"], "nosniff");
    const digest = createHash("sha256").update(latest.body).digest("base64");
    assert.equal(latest.headers["repr-digest"], `sha-256=:${digest}:`, "the digest of the bytes its job uploaded");

    const first = await download(`/artifacts/${runId}/build/dist/app.tar.gz?attempt=1`);
    assert.equal(first.status, 200);
    assert.ok(first.body.equals(await fromStorage("build", "dist/app.tar.gz", 1)));
    assert.equal(first.body.subarray(0, 10).toString(), "attempt 1\n");
    assert.ok((await download(`/artifacts/${runId}/build/dist/app.tar.gz?attempt=0`)).body.equals(latest.body), "attempt 0: the latest");

    const head = await download(`/artifacts/${runId}/build/dist/app.tar.gz`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], String(latest.body.length));
    assert.equal(head.body.length, 0);

    const reader = { authorization: `Bearer ${await tokenFor("runs:read")}` };
    assert.equal((await download(`/artifacts/${runId}/build/dist/app.tar.gz`, { headers: reader })).status, 200, "runs:read is enough");
  });

  it("serves a matrix expansion's artifact, its job name escaped or not", async () => {
    for (const job of ["test%5Bnode%3D20%5D", "test[node=20]"]) {
      const answer = await download(`/artifacts/${runId}/${job}/out.txt`);
      assert.equal(answer.status, 200, `${job}: ${answer.body}`);
      assert.equal(answer.body.toString(), "built for 20\n");
    }
    const path = artifactDownloadPath(runId, "test[node=22]", "out.txt");
    assert.equal(path, `/artifacts/${runId}/test%5Bnode%3D22%5D/out.txt`);
    assert.equal((await download(path)).body.toString(), "built for 22\n");
    assert.equal(artifactDownloadPath(runId, "build", "dist/app.tar.gz", 1), `/artifacts/${runId}/build/dist/app.tar.gz?attempt=1`);
  });

  it("answers 401, 403, 404, 400 and 405 with a JSON error, and takes no token from the URL", async () => {
    const path = `/artifacts/${runId}/build/dist/app.tar.gz`;
    const none = await download(path, { headers: {} });
    assert.equal(none.status, 401);
    assert.match(errorOf(none), /send an API token with runs:read/);
    const inUrl = await download(`${path}?token=${otto.adminToken}&access_token=${otto.adminToken}`, { headers: {} });
    assert.equal(inUrl.status, 401, "a token in the URL is not looked at");
    const unknown = await download(path, { headers: { authorization: "Bearer otto_api_nonsense" } });
    assert.equal(unknown.status, 401);
    assert.match(errorOf(unknown), /unknown, expired or revoked/);
    const wall = await download(path, { headers: { authorization: `Bearer ${await tokenFor("agents:read")}` } });
    assert.equal(wall.status, 403);
    assert.match(errorOf(wall), /needs an API token with runs:read/);

    const notFound = {
      [`/artifacts/${crypto.randomUUID()}/build/dist/app.tar.gz`]: /has no artifact dist\/app\.tar\.gz of job build/,
      [`/artifacts/${runId}/deploy/dist/app.tar.gz`]: /has no artifact dist\/app\.tar\.gz of job deploy/,
      [`/artifacts/${runId}/build/dist/other.tar.gz`]: /has no artifact dist\/other\.tar\.gz/,
      [`/artifacts/${runId}/build/dist/app.tar.gz?attempt=3`]: /in attempt 3/,
      [`/artifacts/${runId}/test%5Bnode%3D24%5D/out.txt`]: /of job test\[node=24\]/,
    };
    for (const [wrong, message] of Object.entries(notFound)) {
      const answer = await download(wrong);
      assert.equal(answer.status, 404, wrong);
      assert.match(errorOf(answer), message, wrong);
    }
    for (const malformed of [`/artifacts/${runId}/build`, `/artifacts/x/build/a.txt`, `/artifacts/${runId}/build/..%2Fsecret`, `${path}?attempt=last`]) {
      const answer = await download(malformed);
      assert.equal(answer.status, 400, malformed);
      errorOf(answer);
    }
    const posted = await download(path, { method: "POST" });
    assert.equal(posted.status, 405);
    assert.equal(posted.headers.allow, "GET, HEAD");
    // Not the web UI's page, nor the API's.
    for (const answer of [none, posted]) assert.doesNotMatch(String(answer.headers["content-type"]), /html/);
  });

  it("answers 503 while storage does not answer, and serves again once it does", async () => {
    const path = `/artifacts/${runId}/test%5Bnode%3D22%5D/out.txt`;
    const s3 = otto.supervisor.pid("s3")!;
    process.kill(s3, "SIGSTOP");
    let stalled: Answer;
    try {
      stalled = await download(path);
    } finally {
      process.kill(s3, "SIGCONT");
    }
    assert.equal(stalled.status, 503);
    assert.match(errorOf(stalled), /storage cannot be reached now \(storage sent nothing for 1000 ms\); try again/);
    assert.equal((await download(path)).body.toString(), "built for 22\n");
  });
});
