// The HTTP client of calls between Otto processes (kit/unary-http-client.ts):
// a unary call is one request with a Content-Length (no chunked body), its
// answer read whole; streams go through Connect's own client; deadlines and
// unreachable peers are the Connect errors callers retry on. Against a
// Connect server in this process.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createTransport } from "@connectrpc/connect/protocol-connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { RunService } from "@otto/gen/v1/run_service_pb";
import { RunState } from "@otto/gen/v1/run_pb";
import { unaryHttpClient } from "@otto/kit/unary-http-client";

const runId = "8e0f3e9b-8c1a-4a5e-9b1a-1c2d3e4f5a6b";
const seen: Array<{ path: string; length?: string; chunked: boolean }> = [];
let release: (() => void) | undefined;
let server: http.Server;
let baseUrl: string;

before(async () => {
  const adapter = connectNodeAdapter({
    routes: (router) =>
      router.service(RunService, {
        async getRun(req) {
          if (req.runId === "00000000-0000-4000-8000-000000000000") await new Promise<void>((resolve) => (release = resolve));
          return { run: { id: req.runId, name: "x".repeat(200_000), state: RunState.SUCCEEDED } };
        },
        async *watchRun(req) {
          for (let seq = 1n; seq <= 3n; seq++) yield { event: { runId: req.runId, seq } };
        },
      }),
  });
  server = http.createServer((req, res) => {
    seen.push({ path: req.url ?? "", length: req.headers["content-length"], chunked: req.headers["transfer-encoding"] === "chunked" });
    adapter(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  release?.();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function clientOf(url: string) {
  const transport = createTransport({
    baseUrl: url,
    httpClient: unaryHttpClient(new http.Agent({ keepAlive: true })),
    useBinaryFormat: true,
    interceptors: [],
    acceptCompression: [],
    sendCompression: null,
    compressMinBytes: 1024,
    readMaxBytes: 0xffffffff,
    writeMaxBytes: 0xffffffff,
  });
  return createClient(RunService, transport);
}

test("a unary call is sent with a Content-Length, not chunked, and its whole answer comes back", async () => {
  seen.length = 0;
  const { run } = await clientOf(baseUrl).getRun({ runId });
  assert.equal(run?.id, runId);
  assert.equal(run?.name.length, 200_000);
  assert.equal(run?.state, RunState.SUCCEEDED);
  assert.equal(seen.length, 1);
  assert.equal(seen[0].chunked, false);
  assert.ok(Number(seen[0].length) > 0, `content-length ${seen[0].length}`);
});

test("a server stream goes through Connect's client and yields every message", async () => {
  const seqs: bigint[] = [];
  for await (const { event } of clientOf(baseUrl).watchRun({ runId })) seqs.push(event!.seq);
  assert.deepEqual(seqs, [1n, 2n, 3n]);
});

test("a call past its deadline is deadline_exceeded; a peer that is not there is unavailable", async () => {
  await assert.rejects(
    clientOf(baseUrl).getRun({ runId: "00000000-0000-4000-8000-000000000000" }, { timeoutMs: 50 }),
    (err) => err instanceof ConnectError && err.code === Code.DeadlineExceeded,
  );
  release?.();
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  await assert.rejects(
    clientOf(`http://127.0.0.1:${port}`).getRun({ runId }),
    (err) => err instanceof ConnectError && err.code === Code.Unavailable,
  );
});
