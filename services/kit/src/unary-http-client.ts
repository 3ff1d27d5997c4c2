import http from "node:http";
import https from "node:https";
import { Code, ConnectError } from "@connectrpc/connect";
import { createNodeHttpClient } from "@connectrpc/connect-node";
import { getAbortSignalReason, type UniversalClientFn, type UniversalClientRequest } from "@connectrpc/connect/protocol";

// The HTTP/1.1 client of calls between Otto processes. A unary call's
// message is small and whole before it is sent, so it goes as one write:
// headers and body with a Content-Length, where Connect's own client sends a
// chunked body and its end separately (two TLS records, two system calls, and
// the server woken twice). The answer is read whole, without the per-call
// abort controllers and errors Connect's client makes. Streaming calls go
// through Connect's client, over the same connections.
export function unaryHttpClient(agent: http.Agent): UniversalClientFn {
  const streaming = createNodeHttpClient({ httpVersion: "1.1", nodeOptions: { agent } });
  return async (req) => {
    if (isStreaming(req)) return streaming(req);
    const body = await wholeBody(req);
    return new Promise((resolve, reject) => {
      const { signal } = req;
      if (signal?.aborted) return reject(ConnectError.from(getAbortSignalReason(signal)));
      const headers: Record<string, string> = {};
      req.header.forEach((value, name) => (headers[name] = value));
      headers["content-length"] = String(body.length);
      const send = req.url.startsWith("https:") ? https.request : http.request;
      const request = send(req.url, { method: req.method, headers, agent });
      const fail = (err: unknown) => {
        signal?.removeEventListener("abort", onAbort);
        reject(err instanceof ConnectError ? err : fromNodeError(err));
      };
      const onAbort = () => {
        const reason = ConnectError.from(getAbortSignalReason(signal!));
        request.destroy(reason);
        fail(reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      request.on("error", fail);
      request.on("response", (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("error", fail);
        response.on("end", () => {
          signal?.removeEventListener("abort", onAbort);
          const header = new Headers();
          for (const [name, value] of Object.entries(response.headers)) {
            if (value === undefined) continue;
            for (const one of Array.isArray(value) ? value : [value]) header.append(name, one);
          }
          resolve({ status: response.statusCode ?? 0, header, body: once(Buffer.concat(chunks)), trailer: new Headers() });
        });
      });
      request.end(body);
    });
  };
}

// Connect's unary requests are application/proto or application/json; its
// streams application/connect+proto (or +json).
function isStreaming(req: UniversalClientRequest): boolean {
  return req.header.get("content-type")?.startsWith("application/connect+") ?? false;
}

async function wholeBody(req: UniversalClientRequest): Promise<Uint8Array> {
  if (req.body === undefined) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  for await (const chunk of req.body) chunks.push(chunk);
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

// As Connect's Node client names them: a peer that is not there is
// unavailable; a connection that broke under the call, aborted.
function fromNodeError(err: unknown): ConnectError {
  const code = (err as { code?: unknown } | null)?.code;
  const status =
    code === "ECONNREFUSED" || code === "ETIMEDOUT" || code === "ENOTFOUND" || code === "EAI_AGAIN"
      ? Code.Unavailable
      : code === "ECONNRESET" || code === "ERR_STREAM_DESTROYED" || code === "ERR_STREAM_WRITE_AFTER_END"
        ? Code.Aborted
        : Code.Internal;
  const connectError = ConnectError.from(err, status);
  if (connectError !== err) connectError.cause = err;
  return connectError;
}
