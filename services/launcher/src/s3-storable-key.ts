import type { S3Error } from "./s3-error.ts";

// s3rver keeps an object as files named after its key: each "/"-separated
// segment becomes a directory or file name, the last one with a suffix such
// as "._S3rver_metadata.json". What the file system cannot name is refused
// with an S3 error instead of failing inside s3rver.
const nameMax = 255;
const longestSuffix = "._S3rver_metadata.json".length;
const maxKeyBytes = 1024;
const bucketName = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export interface S3Target {
  bucket: string;
  key: string;
}

// The bucket and key a path-style request names; undefined for "/".
export function targetOf(url: string): S3Target | undefined {
  const q = url.indexOf("?");
  const path = (q < 0 ? url : url.slice(0, q)).replace(/^\/+/, "");
  if (path === "") return undefined;
  const slash = path.indexOf("/");
  const bucket = decodeURIComponent(slash < 0 ? path : path.slice(0, slash));
  const key = slash < 0 ? "" : decodeURIComponent(path.slice(slash + 1));
  return { bucket, key };
}

export function unstorable({ bucket, key }: S3Target): S3Error | undefined {
  if (!bucketName.test(bucket) || bucket.includes("..")) {
    return { status: 400, code: "InvalidBucketName", message: "The specified bucket is not valid." };
  }
  if (key === "") return undefined;
  if (Buffer.byteLength(key) > maxKeyBytes) {
    return { status: 400, code: "KeyTooLongError", message: `Your key is too long: at most ${maxKeyBytes} bytes.` };
  }
  const segments = key.split("/");
  if (key.includes("\0") || segments.some((s) => s === "." || s === "..")) {
    return { status: 400, code: "InvalidArgument", message: "This development store cannot hold a key with a NUL byte or a '.' or '..' segment." };
  }
  const tooLong = segments.some((s, i) => Buffer.byteLength(s) + (i === segments.length - 1 ? longestSuffix : 0) > nameMax);
  if (tooLong) {
    return {
      status: 400,
      code: "KeyTooLongError",
      message: `This development store keeps each '/'-separated part of a key as a file name: at most ${nameMax} bytes, ${nameMax - longestSuffix} for the last part.`,
    };
  }
  return undefined;
}
