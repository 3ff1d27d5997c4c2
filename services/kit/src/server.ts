import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { answerProbe } from "./probes.ts";
import { measureServerCalls } from "./rpc-metrics.ts";
import { traceServerCalls } from "./tracing-interceptors.ts";
import { jsonStreamShim } from "./json-stream-shim.ts";
import { prepareValidation, undecodable, validateRequests } from "./validate-requests.ts";
import type { Logger } from "./log.ts";
import { admission, type AccessRules, type CredentialVerifier } from "./authorize.ts";
import { peerKey } from "./caller.ts";
import { peerIdentityOf } from "./peer-identity.ts";
import { insecureWarning, tlsServerOptions, type TransportSecurity } from "./transport-security.ts";
import { BodyGate, bodyDecoded, remoteAddressKey } from "./admit-before-body.ts";
import { BodiesInFlight } from "./bodies-in-flight.ts";
import { endStreamsOnRevocation } from "./end-streams-on-revocation.ts";
import { closeWhenAnsweredUnread, invitation, inviteBodyKey } from "./unread-bodies.ts";
import { isConnectionLoss, isRetryable } from "./retryable.ts";
import { mayRepeat } from "@otto/contracts/repeatable-methods";

export interface ServerOptions {
  routes: (router: ConnectRouter) => void;
  host?: string;
  port: number;
  log: Logger;
  interceptors?: Interceptor[];
  security: TransportSecurity;
  // Who may call what; without TLS (OTTO_INSECURE) everyone may call anything.
  access: AccessRules;
  credentials?: CredentialVerifier;
  // Request bodies one caller may have in flight at once, and waiting for a
  // place (see bodies-in-flight.ts).
  maxBodiesPerCaller?: number;
  maxBodiesWaitingPerCaller?: number;
  // The largest request body taken (default 4 MiB).
  maxBodyBytes?: number;
  // Plain HTTP endpoints beside the Connect API (forges' webhooks), asked
  // first: true when one answers the request. They check their callers
  // themselves; `invite` lets a body sent with Expect: 100-continue come.
  httpRoutes?: (req: http.IncomingMessage, res: http.ServerResponse, invite?: () => void) => boolean;
  // HTTP/2 as well as HTTP/1.1, as the client chooses by ALPN (TLS only):
  // for browsers, which open at most 6 HTTP/1.1 connections to a server,
  // each held by a stream the page follows. Requests that arrive over
  // HTTP/2 (req.httpVersionMajor === 2) are Http2ServerRequest and
  // Http2ServerResponse under the types above.
  http2?: boolean;
}

// The largest request body a server takes unless told otherwise.
const defaultMaxBodyBytes = 4 * 1024 * 1024;

export interface RunningServer {
  url: string;
  port: number;
  setReady(ready: boolean): void;
  close(): Promise<void>;
}

// One HTTP/1.1 server per process (HTTPS unless OTTO_INSECURE; HTTP/2 too with `http2`): Connect (JSON or
// binary), gRPC-Web, GET for side-effect-free methods, plus /healthz, /readyz and /metrics.
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  let ready = false;
  const { security } = options;
  if (security.insecure) options.log.warn(insecureWarning);
  // Who is calling is settled before their request's body is read.
  const gate = security.insecure
    ? undefined
    : new BodyGate(admission(options.access, options.credentials), new BodiesInFlight(options.maxBodiesPerCaller ?? 8, options.maxBodiesWaitingPerCaller ?? 1000));
  const tokens = options.credentials?.isLiveId ? { isLiveId: options.credentials.isLiveId.bind(options.credentials) } : undefined;
  const interceptors = [
    traceServerCalls,
    measureServerCalls,
    hideUnexpectedErrors(options.log),
    bodyDecoded,
    ...(gate && tokens ? [endStreamsOnRevocation(tokens)] : []),
    validateRequests,
    ...(options.interceptors ?? []),
  ];
  const shim = jsonStreamShim(options.routes, interceptors, gate);
  // Requests that wait for 100 Continue before sending their body.
  const invitations = new WeakMap<http.IncomingMessage, () => void>();
  const adapter = connectNodeAdapter({
    routes: options.routes,
    interceptors,
    requestGate: gate?.connect,
    readMaxBytes: options.maxBodyBytes ?? defaultMaxBodyBytes,
    // Only large answers (long lists, logs) are worth compressing for
    // clients that accept it; small ones would cost CPU for nothing.
    compressMinBytes: 64 * 1024,
    // Strict JSON: a misspelt field or enum name, or bytes that are not
    // UTF-8, are the caller's mistake to hear about, not to have ignored.
    jsonOptions: { ignoreUnknownFields: false, textDecoder: strictUtf8 } as object,
    contextValues(req) {
      const values = createContextValues();
      values.set(peerKey, peerIdentityOf(req as http.IncomingMessage));
      values.set(remoteAddressKey, (req as http.IncomingMessage).socket.remoteAddress);
      values.set(inviteBodyKey, invitations.get(req as http.IncomingMessage));
      return values;
    },
    fallback(req, res) {
      const body = JSON.stringify({ code: "unimplemented", message: `no such method: ${req.method} ${req.url}` });
      res.writeHead(404, { "content-type": "application/json" });
      res.end(body);
    },
  });
  const handle = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (answerProbe(req, res, ready, options.log)) return;
    closeWhenAnsweredUnread(req, res);
    if (options.httpRoutes?.(req, res, invitations.get(req))) return;
    // Without a gate nobody is asked who they are: the body is welcome at once.
    if (!gate) invitations.get(req)?.();
    if (shim(req, res, invitations.get(req))) return;
    if (refusedAtHttpLevel(req, res)) return;
    if (/^application\/proto/.test(req.headers["content-type"] ?? "")) binaryParseErrorsAreInvalidArgument(res);
    adapter(req, res);
  };
  // Callers without a client certificate are let through the handshake:
  // people and agents authenticate with tokens, Otto processes with their
  // certificates, and the gate above decides per method.
  const tlsOptions = security.insecure ? undefined : { ...security.tls, ...tlsServerOptions, requestCert: true, rejectUnauthorized: false };
  const h2 = tlsOptions !== undefined && options.http2 === true;
  const server = !tlsOptions
    ? http.createServer(handle)
    : h2
      ? http2.createSecureServer({ ...tlsOptions, allowHTTP1: true }, handle as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void)
      : https.createServer(tlsOptions, handle);
  // Connections open now, for a shutdown that cannot wait for them.
  const sockets = new Set<TLSSocket>();
  // A connection keeps the certificate it began with (peer-identity.ts
  // reads it once): TLS 1.2 renegotiation, which could change it, is refused.
  server.on("secureConnection", (socket: TLSSocket) => {
    socket.disableRenegotiation();
    if (h2) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    }
  });
  server.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => {
    invitations.set(req, invitation(res));
    handle(req, res);
  });
  // (Read by the HTTP/2 server too, for the HTTP/1.1 connections it serves.)
  Object.assign(server, { requestTimeout: 0, keepAliveTimeout: 65_000 });
  if (h2) server.on("session", closeWhenIdle);
  const host = options.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  // The first call of each method would otherwise compile its validation rules.
  prepareValidation(methodInputs(options.routes));
  return {
    url: `${security.insecure ? "http" : "https"}://${host}:${port}`,
    port,
    setReady(value) {
      ready = value;
    },
    async close() {
      ready = false;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        if (h2) {
          // close() has closed the idle HTTP/1.1 connections and asked each
          // HTTP/2 session to close (GOAWAY: no new streams) once its
          // streams end; those that have not by then are cut off.
          setTimeout(() => sockets.forEach((socket) => socket.destroy()), 5_000).unref();
          return;
        }
        const h1 = server as http.Server;
        h1.closeIdleConnections();
        setTimeout(() => h1.closeAllConnections(), 5_000).unref();
      });
    },
  };
}

// An HTTP/2 session with no stream open for as long as an idle HTTP/1.1
// connection is kept (keepAliveTimeout above) is closed. (Its timer,
// once fired, is armed again only by setTimeout.)
const sessionIdleMs = 65_000;
function closeWhenIdle(session: http2.ServerHttp2Session): void {
  let open = 0;
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    stream.once("close", () => {
      if (--open === 0 && !session.destroyed) session.setTimeout(sessionIdleMs);
    });
  });
  session.setTimeout(sessionIdleMs);
  session.on("timeout", () => {
    if (open === 0) session.close();
    else session.setTimeout(sessionIdleMs);
  });
}

// The request types of the methods `routes` serves.
function methodInputs(routes: (router: ConnectRouter) => void): DescMessage[] {
  const router = createConnectRouter();
  routes(router);
  return router.handlers.map((handler) => handler.method.input);
}

const connectContentType = /^application\/(json|proto|connect\+(json|proto)|grpc(-web)?(\+(json|proto))?)(;|$)/;

// What Connect would refuse with an empty 405 or 415 gets a JSON body that
// says what to send instead (curl -d without a Content-Type, a PUT, ...).
function refusedAtHttpLevel(req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const refuse = (status: number, message: string) => {
    // A body left unread leaves an HTTP/1.1 connection unusable (HTTP/2
    // has no such header: its stream ends alone, see unread-bodies.ts).
    res.writeHead(status, { "content-type": "application/json", ...(req.httpVersionMajor === 2 ? {} : { connection: "close" }) });
    res.end(JSON.stringify({ code: "invalid_argument", message }));
    return true;
  };
  if (req.method !== "POST" && req.method !== "GET") {
    return refuse(405, `${req.method} is not supported: call methods with POST (side-effect-free ones also with GET)`);
  }
  const type = req.headers["content-type"] ?? "";
  if (req.method === "POST" && !connectContentType.test(type)) {
    return refuse(415, `Content-Type ${type ? `"${type}"` : "(none)"} is not supported: send "Content-Type: application/json" with a JSON body`);
  }
  return false;
}

const strictUtf8 = {
  decode(data: Uint8Array): string {
    try {
      return fatalUtf8.decode(data);
    } catch {
      throw new ConnectError("the request body is not valid UTF-8", Code.InvalidArgument);
    }
  },
};
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

// Connect answers a unary protobuf body that does not decode with 500
// internal ("parse binary: ..."); that is the caller's mistake, so the answer
// becomes 400 invalid_argument. Only such 500 answers are held back to look.
// (validateRequests does the same for streamed messages.)
function binaryParseErrorsAreInvalidArgument(res: http.ServerResponse): void {
  type Loose = (this: http.ServerResponse, ...args: unknown[]) => unknown;
  const writeHead = res.writeHead as unknown as Loose;
  const write = res.write as unknown as Loose;
  const end = res.end as unknown as Loose;
  let held: { headers: unknown[]; body: Buffer[] } | undefined;
  const patched: Record<"writeHead" | "write" | "end", Loose> = {
    writeHead(status, ...rest) {
      if (status !== 500) return writeHead.call(this, status, ...rest);
      // Connect may call it again before the end, the first call not having sent anything.
      held = { headers: rest, body: held?.body ?? [] };
      return this;
    },
    write(chunk, ...rest) {
      if (!held) return write.call(this, chunk, ...rest);
      held.body.push(Buffer.from(chunk as Uint8Array));
      const done = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
      if (done) process.nextTick(done);
      return true;
    },
    end(chunk, ...rest) {
      if (!held) return end.call(this, chunk, ...rest);
      if (chunk && typeof chunk !== "function") held.body.push(Buffer.from(chunk as Uint8Array));
      const done = [chunk, ...rest].find((arg) => typeof arg === "function");
      const body = Buffer.concat(held.body);
      let error: { code?: string; message?: string } | undefined;
      try {
        error = JSON.parse(body.toString("utf8"));
      } catch {
        error = undefined;
      }
      const message = error?.code === "internal" ? undecodable(error.message ?? "") : undefined;
      if (message !== undefined) {
        writeHead.call(this, 400, { "content-type": "application/json" });
        return end.call(this, JSON.stringify({ code: "invalid_argument", message }), done);
      }
      writeHead.call(this, 500, ...held.headers);
      return end.call(this, body, done);
    },
  };
  Object.assign(res, patched);
}

// Connect errors pass through; anything else becomes `internal` without the
// details, which go to the log instead of the caller.
function hideUnexpectedErrors(log: Logger): Interceptor {
  return (next) => async (req) => {
    try {
      return await next(req);
    } catch (err) {
      throw publicError(err, req.method.name, log, mayRepeat(req.method, req.stream ? undefined : req.message));
    }
  };
}

// A call that may be made again whatever became of it (@otto/contracts'
// repeatable-methods.ts) is unavailable, too, when it lost the database's
// connection midway, even with a COMMIT on the way.
export function publicError(err: unknown, method: string, log: Logger, repeatable = false): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof Error && err.name === "AbortError") return new ConnectError("request aborted", Code.Canceled);
  if (isRetryable(err) || (repeatable && isConnectionLoss(err))) {
    log.warn("a dependency could not be reached; answered unavailable", { method, err });
    return new ConnectError("temporarily unavailable: a service this one depends on could not be reached; try again", Code.Unavailable);
  }
  log.error("unexpected error", { method, err, stack: err instanceof Error ? err.stack : undefined });
  return new ConnectError("internal error; see the server log", Code.Internal);
}
