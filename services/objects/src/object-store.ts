import http from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { Client } from "minio";
import { readInt, readString } from "@otto/kit/config";
import { isNetworkError, repeatable } from "@otto/kit/retryable";

export interface S3Config {
  endpoint: string;
  // Where agents reach the same storage, for the presigned URLs they are
  // given, when that is not `endpoint` (agents on other machines).
  publicEndpoint?: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  region: string;
  // A request that gets no byte from storage for this long fails (and is
  // retried by its caller) instead of waiting on a stalled endpoint forever.
  idleTimeoutMs: number;
}

export function readS3Config(env: Record<string, string | undefined>): S3Config {
  return {
    endpoint: readString(env, "OTTO_S3_ENDPOINT"),
    publicEndpoint: readString(env, "OTTO_S3_PUBLIC_ENDPOINT", readString(env, "OTTO_S3_ENDPOINT")),
    accessKey: readString(env, "OTTO_S3_ACCESS_KEY"),
    secretKey: readString(env, "OTTO_S3_SECRET_KEY"),
    bucket: readString(env, "OTTO_S3_BUCKET", "otto"),
    region: readString(env, "OTTO_S3_REGION", "us-east-1"),
    idleTimeoutMs: readInt(env, "OTTO_S3_IDLE_TIMEOUT_MS", 30_000, 100),
  };
}

const partBytes = 8 * 1024 * 1024;

function s3Client(endpoint: string, config: S3Config): Client {
  const url = new URL(endpoint);
  const protocol = url.protocol === "https:" ? https : http;
  return new Client({
    transport: {
      request(options: http.RequestOptions, onResponse: (res: http.IncomingMessage) => void) {
        const req = protocol.request(options, onResponse);
        req.setTimeout(config.idleTimeoutMs, () => req.destroy(new Error(`object storage sent nothing for ${config.idleTimeoutMs} ms`)));
        return req;
      },
    } as typeof http,
    endPoint: url.hostname,
    port: Number(url.port || (url.protocol === "https:" ? 443 : 80)),
    useSSL: url.protocol === "https:",
    accessKey: config.accessKey,
    secretKey: config.secretKey,
    region: config.region,
    pathStyle: true,
    // What a streamed upload holds in memory at once.
    partSize: partBytes,
  });
}

// The few object operations Otto needs, over the S3 protocol.
export class ObjectStore {
  readonly #client: Client;
  // Signs URLs for the public endpoint (signing needs no request).
  readonly #presigner: Client;
  readonly bucket: string;

  constructor(config: S3Config) {
    this.#client = s3Client(config.endpoint, config);
    const publicEndpoint = config.publicEndpoint ?? config.endpoint;
    this.#presigner = publicEndpoint === config.endpoint ? this.#client : s3Client(publicEndpoint, config);
    this.bucket = config.bucket;
  }

  async ensureBucket(): Promise<void> {
    if (!(await this.#client.bucketExists(this.bucket))) {
      await this.#client.makeBucket(this.bucket).catch(async (err) => {
        if (!(await this.#client.bucketExists(this.bucket))) throw err;
      });
    }
  }

  // The same bytes under the same key: done twice, it is done once. A
  // stream is sent once (not retried here) in parts of `partBytes`.
  async put(key: string, body: Buffer | Readable, contentType: string, size = Buffer.isBuffer(body) ? body.length : undefined): Promise<void> {
    const put = () => this.#client.putObject(this.bucket, key, body, size, { "Content-Type": contentType });
    await (Buffer.isBuffer(body) ? retryableOnNetworkError(put) : put());
  }

  readFrom(key: string, offset: number): Promise<Buffer> {
    return retryableOnNetworkError(async () => bytesOf(await this.#client.getPartialObject(this.bucket, key, offset)));
  }

  // `length` bytes from `offset` on.
  readRange(key: string, offset: number, length: number): Promise<Buffer> {
    return retryableOnNetworkError(async () => {
      const bytes = await bytesOf(await this.#client.getPartialObject(this.bucket, key, offset, length));
      if (bytes.length !== length) throw new Error(`object ${key} gave ${bytes.length} bytes from ${offset}, not ${length}`);
      return bytes;
    });
  }

  presignedPut(key: string, expirySeconds: number): Promise<string> {
    return this.#presigner.presignedPutObject(this.bucket, key, expirySeconds);
  }

  presignedGet(key: string, expirySeconds: number): Promise<string> {
    return this.#presigner.presignedGetObject(this.bucket, key, expirySeconds);
  }

  // Deletes the objects under `keys`, a thousand per request; a key with no
  // object is no error.
  async removeMany(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const part = keys.slice(i, i + 1000);
      const results = await retryableOnNetworkError(() => this.#client.removeObjects(this.bucket, part));
      // minio-js answers with the response's <Error> elements themselves
      // (its type says they are wrapped in { Error }).
      const failed = results
        .map((result) => ((result as { Error?: DeleteError } | null)?.Error ?? result) as DeleteError | null | undefined)
        .filter((error): error is DeleteError => !!error?.Code && error.Code !== "NoSuchKey");
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new Error(`object storage did not delete ${failed.length} of ${part.length} objects, e.g. ${first.Key}: ${first.Code} ${first.Message ?? ""}`.trim());
      }
    }
  }

  // Every key under `prefix`.
  keysUnder(prefix: string): Promise<string[]> {
    return retryableOnNetworkError(async () => {
      const keys: string[] = [];
      for await (const item of this.#client.listObjectsV2(this.bucket, prefix, true)) {
        const name = (item as { name?: string }).name;
        if (name) keys.push(name);
      }
      return keys;
    });
  }

  async size(key: string): Promise<number> {
    return (await retryableOnNetworkError(() => this.#client.statObject(this.bucket, key))).size;
  }
}

interface DeleteError {
  Code?: string;
  Message?: string;
  Key?: string;
}

async function bytesOf(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

// Every operation here may be repeated without harm: one that S3 could not
// be reached for (refused, reset, broken) is for the caller to try again.
function retryableOnNetworkError<T>(operation: () => Promise<T>): Promise<T> {
  return repeatable(operation, isNetworkError);
}
