// Development-only S3 endpoint: s3rver on a local directory. It checks no
// signatures, so it must never face a real network.
import http from "node:http";
import type { AddressInfo } from "node:net";
import S3rver from "s3rver";
import { loadConfig, readInt, readString } from "../../kit/src/config.ts";
import { createLogger } from "../../kit/src/log.ts";
import { installSignalHandlers, onShutdown } from "../../kit/src/shutdown.ts";

const config = loadConfig("s3", (env) => ({
  host: readString(env, "OTTO_HOST", "127.0.0.1"),
  port: readInt(env, "OTTO_PORT", 0),
  directory: readString(env, "OTTO_S3_DIR"),
}));
const log = createLogger("s3");
installSignalHandlers((msg, fields) => log.info(msg, fields as Record<string, unknown>));

const s3rver = new S3rver({ directory: config.directory, silent: true });
const handle = s3rver.callback();
const server = http.createServer((req, res) => {
  // minio-js lists in-progress multipart uploads before starting one, which
  // s3rver does not implement: answer with an empty list.
  const url = new URL(req.url ?? "/", "http://localhost");
  if (req.method === "GET" && url.searchParams.has("uploads")) {
    const bucket = url.pathname.split("/")[1] ?? "";
    res.writeHead(200, { "content-type": "application/xml" });
    res.end(
      `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
        `<Bucket>${bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>` +
        `<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>`,
    );
    return;
  }
  handle(req, res);
});
await new Promise<void>((resolve) => server.listen(config.port, config.host, resolve));
onShutdown("close server", () => new Promise<void>((resolve) => server.close(() => resolve())));
const port = (server.address() as AddressInfo).port;
log.info("listening", { url: `http://${config.host}:${port}`, directory: config.directory });
