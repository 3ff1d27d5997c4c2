import type http from "node:http";
import { fromJson, toJson, type DescMethodServerStreaming, type JsonValue } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  createConnectRouter,
  createRouterTransport,
  type ConnectRouter,
  type Interceptor,
} from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import type { BodyGate } from "./admit-before-body.ts";

const maxBodyBytes = 1024 * 1024;
const utf8 = new TextDecoder("utf-8", { fatal: true });

// Lets curl call server-streaming methods with a plain JSON body: a POST with
// `Content-Type: application/json` to a streaming method is answered with
// newline-delimited JSON, one response message per line. (The Connect
// protocol proper needs enveloped frames, which curl cannot write easily.)
// An error before the first message is an ordinary Connect error response;
// one after it arrives as a last line {"error": {"code", "message"}}.
// With a gate, the caller is admitted before the body is read, and again
// (from the same headers) by the method's own gate, which tells the method
// who is calling; without one (OTTO_INSECURE) anyone may call.
export function jsonStreamShim(routes: (router: ConnectRouter) => void, interceptors: Interceptor[], gate?: BodyGate) {
  const router = createConnectRouter();
  routes(router);
  const streaming = new Map<string, DescMethodServerStreaming>();
  for (const handler of router.handlers) {
    const method = handler.method;
    if (method.methodKind === "server_streaming") streaming.set(handler.requestPath, method as DescMethodServerStreaming);
  }
  const transport = createRouterTransport(routes, { router: { interceptors, requestGate: gate?.connect } });
  // `invite` asks a client waiting for 100 Continue for its body.
  return (req: http.IncomingMessage, res: http.ServerResponse, invite?: () => void): boolean => {
    const method = streaming.get((req.url ?? "").split("?")[0]);
    const type = req.headers["content-type"] ?? "";
    if (!method || req.method !== "POST" || !/^application\/json(;|$)/.test(type)) return false;
    void serve(method, req, res, invite);
    return true;
  };

  async function serve(method: DescMethodServerStreaming, req: http.IncomingMessage, res: http.ServerResponse, invite?: () => void) {
    const aborted = new AbortController();
    res.on("close", () => aborted.abort());
    try {
      let decoded = () => {};
      if (gate) {
        ({ decoded } = await gate.node(req, method.parent.typeName, method.name, aborted.signal, invite));
      }
      const input = fromJson(method.input, await readJson(req));
      decoded();
      const client = createClient(method.parent, transport) as unknown as Record<
        string,
        (input: unknown, options: object) => AsyncIterable<any>
      >;
      const headers = forwardedHeaders(req);
      for await (const message of client[method.localName](input, { signal: aborted.signal, timeoutMs: 0, headers })) {
        if (!res.headersSent) res.writeHead(200, { "content-type": "application/x-ndjson" });
        res.write(JSON.stringify(toJson(method.output, message)) + "\n");
      }
      if (!res.headersSent) res.writeHead(200, { "content-type": "application/x-ndjson" });
      res.end();
    } catch (err) {
      const error = err instanceof ConnectError ? err : new ConnectError(String((err as Error).message), Code.InvalidArgument);
      const body = { code: codeToString(error.code), message: error.rawMessage };
      if (!res.headersSent) {
        // A body refused unread leaves an HTTP/1.1 connection unusable:
        // close it. (HTTP/2 forbids the header; the stream alone ends.)
        const headers: http.OutgoingHttpHeaders = { "content-type": "application/json" };
        if (!req.readableEnded && req.httpVersionMajor !== 2) headers.connection = "close";
        res.writeHead(codeToHttpStatus(error.code), headers);
        res.end(JSON.stringify(body));
      } else {
        res.end(JSON.stringify({ error: body }) + "\n");
      }
    }
  }
}

function forwardedHeaders(req: http.IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of ["authorization", "traceparent", "tracestate"]) {
    const value = req.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return headers;
}

async function readJson(req: http.IncomingMessage): Promise<JsonValue> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const part of req) {
    size += part.length;
    if (size > maxBodyBytes) throw new ConnectError(`request body is larger than ${maxBodyBytes} bytes`, Code.ResourceExhausted);
    parts.push(part);
  }
  let text: string;
  try {
    text = utf8.decode(Buffer.concat(parts));
  } catch {
    throw new ConnectError("the request body is not valid UTF-8", Code.InvalidArgument);
  }
  try {
    return JSON.parse(text || "{}");
  } catch (err) {
    throw new ConnectError(`request body is not valid JSON: ${(err as Error).message}`, Code.InvalidArgument);
  }
}
