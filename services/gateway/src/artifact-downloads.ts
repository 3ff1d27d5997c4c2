import http from "node:http";
import https from "node:https";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { GetArtifactUrlRequestSchema, type GetArtifactUrlRequest, type GetArtifactUrlResponse } from "@otto/gen/v1/artifact_service_pb";
import { artifactNameProblem } from "@otto/contracts/artifact-name";
import type { CredentialVerifier } from "@otto/kit/authorize";
import type { Logger } from "@otto/kit/log";
import { requestProblem } from "@otto/kit/validate-requests";
import { refuseToken } from "./http-token.ts";

// GET /artifacts/{run id}/{job}/{artifact path}?attempt=N: an artifact's
// bytes through the gateway, for a web page, which can neither send its
// bearer token on a navigation to a presigned URL nor reach a plain-http
// storage from an https page. The token is a header (never in the URL);
// the URL comes from the objects service as GetArtifactUrl gives it, and
// the bytes are passed on as storage sends them, never held whole.
const prefix = "/artifacts/";
const usage = "the address is /artifacts/{run id}/{job}/{artifact path}, with ?attempt=N for another attempt than the latest";

export interface ArtifactDownloadOptions {
  // GetArtifactUrl's answer (artifact-routes.ts artifactUrl).
  artifactUrl: (req: GetArtifactUrlRequest, signal: AbortSignal) => Promise<GetArtifactUrlResponse>;
  credentials: CredentialVerifier;
  log: Logger;
  // Without TLS nothing is authenticated (OTTO_INSECURE).
  insecure: boolean;
  // Storage that sends nothing for this long, while the caller is ready for
  // more, fails the download (OTTO_S3_IDLE_TIMEOUT_MS).
  storageIdleTimeoutMs: number;
}

export function artifactDownloads(options: ArtifactDownloadOptions) {
  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const url = req.url ?? "";
    const queryAt = url.indexOf("?");
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    if (!path.startsWith(prefix)) return false;
    // The caller went away (or the answer ended): nothing more is asked for it.
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    void answer(req, res, path, queryAt < 0 ? "" : url.slice(queryAt + 1), gone.signal).catch((err) => {
      if (gone.signal.aborted) return;
      options.log.error("artifact download failed", { err });
      fail(req, res, 500, "the artifact could not be served; the gateway's log says why");
    });
    return true;
  };

  async function answer(req: http.IncomingMessage, res: http.ServerResponse, path: string, query: string, signal: AbortSignal) {
    if (req.method !== "GET" && req.method !== "HEAD") return fail(req, res, 405, "artifacts are read with GET (or HEAD)", { allow: "GET, HEAD" });
    const refusal = options.insecure ? undefined : await checkToken(req.headers.authorization);
    if (refusal) return fail(req, res, refusal.status, refusal.message, refusal.status === 401 ? { "www-authenticate": 'Bearer realm="Otto"' } : {});
    const wanted = parse(path, query);
    if (typeof wanted === "string") return fail(req, res, 400, wanted);

    let found: GetArtifactUrlResponse;
    try {
      found = await options.artifactUrl(wanted, signal);
    } catch (err) {
      if (signal.aborted) return;
      const { status, message } = objectsFailure(err);
      if (status >= 500) options.log.warn("artifact download: no URL from the objects service", { err, run_id: wanted.runId, job: wanted.job });
      return fail(req, res, status, message);
    }

    let upstream: http.IncomingMessage;
    try {
      upstream = await getFromStorage(found.url, signal, options.storageIdleTimeoutMs);
    } catch (err) {
      if (signal.aborted) return;
      options.log.warn("artifact download: storage cannot be reached", { err, run_id: wanted.runId, job: wanted.job });
      return fail(req, res, 503, `storage cannot be reached now (${(err as Error).message}); try again`);
    }
    if (upstream.statusCode !== 200) {
      upstream.destroy();
      options.log.warn("artifact download: storage refused", { status: upstream.statusCode, run_id: wanted.runId, job: wanted.job, name: wanted.name });
      return fail(req, res, 502, `storage answered HTTP ${upstream.statusCode} for artifact ${wanted.name}`);
    }
    const length = upstream.headers["content-length"];
    const sha256 = found.artifact?.sha256;
    res.writeHead(200, {
      "content-type": "application/octet-stream",
      ...(length !== undefined ? { "content-length": length } : {}),
      // RFC 9530: the digest of the bytes uploaded, for the caller to check.
      ...(sha256 ? { "repr-digest": `sha-256=:${Buffer.from(sha256, "hex").toString("base64")}:` } : {}),
      "content-disposition": `attachment; filename*=UTF-8''${encodeFilename(baseName(found.artifact?.name || wanted.name))}`,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
      "content-security-policy": "default-src 'none'; sandbox",
      "cross-origin-resource-policy": "same-origin",
    });
    if (req.method === "HEAD") {
      upstream.destroy();
      res.end();
      return;
    }
    try {
      await pipeline(upstream, watchdog(res, options.storageIdleTimeoutMs), res);
    } catch (err) {
      // The caller left (pipeline destroyed storage's answer), or storage
      // broke off: the response is cut short, which its length shows.
      if (!signal.aborted) options.log.warn("artifact download broke off", { err, run_id: wanted.runId, job: wanted.job, name: wanted.name });
    }
  }

  async function checkToken(authorization: string | undefined) {
    try {
      return await refuseToken(options.credentials, authorization, "runs:read");
    } catch (err) {
      options.log.warn("artifact download: the token cannot be checked", { err });
      return { status: 503 as const, message: "the token cannot be checked now; try again" };
    }
  }
}

// The request the address names, or what is wrong with the address. The
// job and each part of the path are percent-decoded (a matrix expansion's
// job is test%5Bnode%3D20%5D).
function parse(path: string, query: string): GetArtifactUrlRequest | string {
  const parts = path.slice(prefix.length).split("/");
  if (parts.length < 3 || parts[0] === "" || parts[1] === "") return usage;
  let runId: string, job: string, name: string;
  try {
    [runId, job, name] = [parts[0], parts[1], parts.slice(2).join("/")].map(decodeURIComponent);
  } catch {
    return `the address has a malformed %-escape; ${usage}`;
  }
  const attempt = new URLSearchParams(query).get("attempt") || "0";
  if (!/^\d{1,9}$/.test(attempt)) return `attempt must be an attempt's number (0 or none: the latest), not "${attempt.slice(0, 40)}"`;
  const request = create(GetArtifactUrlRequestSchema, { runId, job, name, attempt: Number(attempt) });
  return requestProblem(GetArtifactUrlRequestSchema, request) ?? artifactNameProblem(name) ?? request;
}

function objectsFailure(err: unknown): { status: number; message: string } {
  const error = ConnectError.from(err);
  switch (error.code) {
    case Code.NotFound:
      return { status: 404, message: error.rawMessage };
    case Code.InvalidArgument:
      return { status: 400, message: error.rawMessage };
    case Code.Unavailable:
    case Code.DeadlineExceeded:
    case Code.ResourceExhausted:
      return { status: 503, message: "the artifacts cannot be looked up now; try again" };
    default:
      return { status: 502, message: "the artifacts could not be looked up" };
  }
}

// Storage's answer to the presigned URL, once its headers are in. Each
// download has a connection of its own, closed when it ends or the caller
// leaves.
function getFromStorage(url: string, signal: AbortSignal, idleTimeoutMs: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith("https:") ? https.get : http.get;
    const request = get(url, { signal, agent: false }, (response) => {
      // From here on the watchdog minds stalls: a caller that reads slowly
      // holds storage back, and that is no stall of storage's.
      request.setTimeout(0);
      resolve(response);
    });
    request.setTimeout(idleTimeoutMs, () => request.destroy(new Error(`storage sent nothing for ${idleTimeoutMs} ms`)));
    request.on("error", reject);
  });
}

// Passes the bytes on, and fails the download when storage sends nothing
// for `idleMs` while the response could take more.
function watchdog(res: http.ServerResponse, idleMs: number): Transform {
  let timer: NodeJS.Timeout | undefined;
  const stream = new Transform({
    transform(chunk, _encoding, done) {
      arm();
      done(null, chunk);
    },
    flush(done) {
      clearTimeout(timer);
      done();
    },
    destroy(err, done) {
      clearTimeout(timer);
      res.off("drain", arm);
      done(err);
    },
  });
  function arm() {
    clearTimeout(timer);
    timer = setTimeout(() => (res.writableNeedDrain ? arm() : stream.destroy(new Error(`storage sent nothing for ${idleMs} ms`))), idleMs);
  }
  res.on("drain", arm);
  arm();
  return stream;
}

function baseName(name: string): string {
  return name.slice(name.lastIndexOf("/") + 1);
}

// RFC 8187: UTF-8, percent-encoded but for the attribute characters.
export function encodeFilename(name: string): string {
  return encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function fail(req: http.IncomingMessage, res: http.ServerResponse, status: number, message: string, headers: Record<string, string> = {}) {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: message });
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(req.method === "HEAD" ? undefined : body);
}
