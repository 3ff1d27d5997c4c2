// Development-only S3 endpoint: s3rver on a local directory, behind a check of
// AWS Signature V4 with this install's key pair (s3-credentials.ts). A request
// that is unsigned, wrongly signed or expired gets 403 and never reaches
// s3rver; a key s3rver cannot store gets an S3 error; and an error while
// answering one request ends that request, never the process.
import { AsyncLocalStorage } from "node:async_hooks";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import S3rver from "s3rver";
import s3rverAccount from "s3rver/lib/models/account.js";
import { loadConfig, readInt, readString } from "@otto/kit/config";
import { createLogger } from "@otto/kit/log";
import { installSignalHandlers, onShutdown } from "@otto/kit/shutdown";
import { sendS3Error, type S3Error } from "./s3-error.ts";
import { targetOf, unstorable } from "./s3-storable-key.ts";
import { readSignedBody, replayRequest } from "./signed-body.ts";
import { verifySignature, type VerifierOptions } from "./sigv4.ts";
import { tolerateConcurrentDeletes } from "./s3rver-deletes.ts";

const config = loadConfig("s3", (env) => ({
  host: readString(env, "OTTO_HOST", "127.0.0.1"),
  port: readInt(env, "OTTO_PORT", 0),
  directory: readString(env, "OTTO_S3_DIR"),
  accessKey: readString(env, "OTTO_S3_ACCESS_KEY"),
  secretKey: readString(env, "OTTO_S3_SECRET_KEY"),
  region: readString(env, "OTTO_S3_REGION", "us-east-1"),
  maxSignedBodyBytes: readInt(env, "OTTO_S3_MAX_SIGNED_BODY_BYTES", 1024 * 1024 * 1024),
}));
const log = createLogger("s3");
installSignalHandlers((msg, fields) => log.info(msg, fields as Record<string, unknown>));

const verifier: VerifierOptions = {
  credentials: { accessKey: config.accessKey, secretKey: config.secretKey },
  region: config.region,
  service: "s3",
  maxClockSkewMs: 15 * 60 * 1000,
};
// s3rver looks up the access key of a signed request in its own table (and
// checks no V4 signature): this install's key replaces its built-in one.
s3rverAccount.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
s3rverAccount.DUMMY_ACCOUNT.createKeyPair(config.accessKey, config.secretKey);
tolerateConcurrentDeletes();
// Path-style requests only: no Host header makes s3rver read the bucket from
// the host name, except names under the reserved ".invalid" domain.
const s3rver = new S3rver({ directory: config.directory, silent: true, vhostBuckets: false, serviceEndpoint: "s3.invalid" });
const handle = s3rver.callback();

// s3rver leaves some stream errors (a file it cannot open, say) unhandled:
// they arrive here, still in the context of the request that caused them.
const current = new AsyncLocalStorage<{ req: IncomingMessage; res: ServerResponse }>();
process.on("uncaughtException", (err) => {
  const request = current.getStore();
  if (!request) {
    log.error("uncaught exception", { err });
    process.exit(1);
  }
  fail(request.req, request.res, err);
});

const server = http.createServer((req, res) => {
  current.run({ req, res }, () => {
    serve(req, res).catch((err: unknown) => fail(req, res, err));
  });
});

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const method = req.method ?? "GET";
  const resource = (req.url ?? "/").split("?")[0]!;
  const refuse = (error: S3Error) => sendS3Error(res, error, resource, method);
  const verdict = verifySignature({ method, url: req.url ?? "/", headers: req.headersDistinct }, verifier);
  if (!verdict.ok) return refuse({ status: 403, code: verdict.code, message: verdict.message });
  const target = targetOf(req.url ?? "/");
  const problem = target && unstorable(target);
  if (problem) return refuse(problem);
  // minio-js lists in-progress multipart uploads before starting one, which
  // s3rver does not implement: answer with an empty list.
  if (method === "GET" && target && !target.key && new URL(req.url ?? "/", "http://localhost").searchParams.has("uploads")) {
    res.writeHead(200, { "content-type": "application/xml" });
    res.end(
      `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
        `<Bucket>${target.bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
        `<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`,
    );
    return;
  }
  if (verdict.payload.kind === "unsigned") return handle(req, res);
  const body = await readSignedBody(req, verdict.payload.hex, config.maxSignedBodyBytes);
  if (!Buffer.isBuffer(body)) return refuse(body);
  handle(replayRequest(req, body), res);
}

function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  log.error("request failed", { method: req.method, path: (req.url ?? "/").split("?")[0], err });
  sendS3Error(res, { status: 500, code: "InternalError", message: "We encountered an internal error. Please try again." }, (req.url ?? "/").split("?")[0]!, req.method ?? "GET");
}

await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
onShutdown("close server", () => new Promise<void>((resolve) => server.close(() => resolve())));
const port = (server.address() as AddressInfo).port;
log.info("listening", { url: `http://${config.host}:${port}`, directory: config.directory });
