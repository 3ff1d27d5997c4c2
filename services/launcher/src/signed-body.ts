import { createHash } from "node:crypto";
import { IncomingMessage } from "node:http";
import type { S3Error } from "./s3-error.ts";

// A body whose SHA-256 the signature covers is read whole and checked before
// the store sees a byte of it, so a body altered on the way is never stored
// (s3rver writes an object in place as it streams in).
export function readSignedBody(req: IncomingMessage, sha256Hex: string, maxBytes: number): Promise<Buffer | S3Error> {
  if (Number(req.headers["content-length"] ?? 0) > maxBytes) return Promise.resolve(tooLarge(maxBytes));
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const hash = createHash("sha256");
    const onData = (part: Buffer) => {
      size += part.length;
      if (size > maxBytes) {
        // Read no further; the answer closes the connection.
        req.off("data", onData).off("end", onEnd).pause();
        resolve(tooLarge(maxBytes));
        return;
      }
      hash.update(part);
      parts.push(part);
    };
    const onEnd = () => {
      if (hash.digest("hex") !== sha256Hex) {
        resolve({ status: 400, code: "XAmzContentSHA256Mismatch", message: "The provided 'x-amz-content-sha256' header does not match what was computed." });
      } else {
        resolve(Buffer.concat(parts, size));
      }
    };
    req.on("data", onData).on("end", onEnd).on("error", reject);
    req.on("close", () => reject(new Error("the request closed before its body ended")));
  });
}

// The same request again, its body already read, for a handler that reads it.
export function replayRequest(req: IncomingMessage, body: Buffer): IncomingMessage {
  const replay = new IncomingMessage(req.socket);
  replay.method = req.method;
  replay.url = req.url;
  replay.headers = req.headers;
  replay.rawHeaders = req.rawHeaders;
  replay.httpVersion = req.httpVersion;
  replay.httpVersionMajor = req.httpVersionMajor;
  replay.httpVersionMinor = req.httpVersionMinor;
  replay.complete = true;
  if (body.length > 0) replay.push(body);
  replay.push(null);
  return replay;
}

function tooLarge(maxBytes: number): S3Error {
  return { status: 400, code: "EntityTooLarge", message: `This development store checks a signed body's SHA-256 in memory: at most ${maxBytes} bytes.` };
}
