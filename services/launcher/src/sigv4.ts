// AWS Signature Version 4, verified the way S3 does: an Authorization header
// (with x-amz-date and x-amz-content-sha256) or a presigned query string.
// Written from the AWS "Signature Version 4 signing process" and "Authenticating
// Requests: Using Query Parameters" documents.
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

const algorithm = "AWS4-HMAC-SHA256";
const unsignedPayload = "UNSIGNED-PAYLOAD";
const maxPresignedExpirySeconds = 7 * 24 * 3600;

export interface SigningCredentials {
  accessKey: string;
  secretKey: string;
}

export interface VerifierOptions {
  credentials: SigningCredentials;
  region: string;
  service: string;
  // How far a header-signed request's x-amz-date may be from the clock, and
  // how far in the future a presigned URL's X-Amz-Date may be.
  maxClockSkewMs: number;
}

export interface RequestToVerify {
  method: string;
  // As received: the raw path and query.
  url: string;
  // Every value of every header, names in lower case (IncomingMessage.headersDistinct).
  headers: Record<string, string[] | undefined>;
}

// What the signature covers of the body: nothing, or the SHA-256 of the bytes
// the caller must now check.
export type SignedPayload = { kind: "unsigned" } | { kind: "sha256"; hex: string };

export type Verdict = { ok: true; payload: SignedPayload } | { ok: false; code: string; message: string };

export function verifySignature(request: RequestToVerify, options: VerifierOptions, now = new Date()): Verdict {
  try {
    const query = parseQuery(request.url);
    const hasHeader = request.headers.authorization !== undefined;
    const hasQuery = query.some(([name]) => name === "X-Amz-Algorithm" || name === "X-Amz-Signature" || name === "X-Amz-Credential");
    if (hasHeader && hasQuery) throw refuse("InvalidArgument", "only one auth mechanism is allowed: the Authorization header or the X-Amz-* query parameters");
    if (hasHeader) return verifyHeaderSigned(request, query, options, now);
    if (hasQuery) return verifyPresigned(request, query, options, now);
    throw refuse("AccessDenied", "Access Denied: the request is not signed");
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, code: err.code, message: err.message };
    throw err;
  }
}

class Refusal extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}
const refuse = (code: string, message: string) => new Refusal(code, message);

function verifyHeaderSigned(request: RequestToVerify, query: QueryParam[], options: VerifierOptions, now: Date): Verdict {
  const authorization = single(request.headers, "authorization");
  if (!authorization.startsWith(`${algorithm} `)) throw refuse("AccessDenied", `only ${algorithm} signatures are accepted`);
  const fields = new Map<string, string>();
  for (const part of authorization.slice(algorithm.length + 1).split(",")) {
    const eq = part.indexOf("=");
    if (eq < 0) throw refuse("AuthorizationHeaderMalformed", "the Authorization header is malformed");
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get("Credential");
  const signedHeaders = fields.get("SignedHeaders");
  const signature = fields.get("Signature");
  if (!credential || !signedHeaders || !signature) {
    throw refuse("AuthorizationHeaderMalformed", "the Authorization header needs Credential, SignedHeaders and Signature");
  }
  const amzDate = single(request.headers, "x-amz-date", "AccessDenied", "a header-signed request needs an x-amz-date header");
  const time = parseAmzDate(amzDate, "AccessDenied");
  if (Math.abs(now.getTime() - time.getTime()) > options.maxClockSkewMs) {
    throw refuse("RequestTimeTooSkewed", "the difference between the request time and the server's time is too large");
  }
  const scope = checkCredential(credential, amzDate, options, "AuthorizationHeaderMalformed");
  const payloadHash = single(request.headers, "x-amz-content-sha256", "AccessDenied", "a header-signed request needs an x-amz-content-sha256 header");
  let payload: SignedPayload;
  if (payloadHash === unsignedPayload) payload = { kind: "unsigned" };
  else if (/^[0-9a-f]{64}$/.test(payloadHash)) payload = { kind: "sha256", hex: payloadHash };
  else throw refuse("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a lower-case hex SHA-256");
  const names = checkSignedHeaders(signedHeaders, request.headers);
  const canonical = canonicalRequest(request, query, names, payloadHash);
  checkSignature(signature, stringToSign(amzDate, scope, canonical), amzDate, options);
  return { ok: true, payload };
}

function verifyPresigned(request: RequestToVerify, query: QueryParam[], options: VerifierOptions, now: Date): Verdict {
  const param = (name: string) => {
    const values = query.filter(([n]) => n === name);
    if (values.length !== 1) throw refuse("AuthorizationQueryParametersError", `a presigned URL needs exactly one ${name} parameter`);
    return values[0]![1];
  };
  if (param("X-Amz-Algorithm") !== algorithm) throw refuse("AuthorizationQueryParametersError", `X-Amz-Algorithm must be ${algorithm}`);
  const credential = param("X-Amz-Credential");
  const amzDate = param("X-Amz-Date");
  const expiresText = param("X-Amz-Expires");
  const signedHeaders = param("X-Amz-SignedHeaders");
  const signature = param("X-Amz-Signature");
  const time = parseAmzDate(amzDate, "AuthorizationQueryParametersError");
  if (!/^[0-9]{1,7}$/.test(expiresText) || Number(expiresText) < 1 || Number(expiresText) > maxPresignedExpirySeconds) {
    throw refuse("AuthorizationQueryParametersError", `X-Amz-Expires must be a whole number of seconds from 1 to ${maxPresignedExpirySeconds}`);
  }
  if (now.getTime() >= time.getTime() + Number(expiresText) * 1000) throw refuse("AccessDenied", "Request has expired");
  if (time.getTime() - now.getTime() > options.maxClockSkewMs) throw refuse("AccessDenied", "Request is not valid yet");
  const scope = checkCredential(credential, amzDate, options, "AuthorizationQueryParametersError");
  const names = checkSignedHeaders(signedHeaders, request.headers);
  const covered = query.filter(([name]) => name !== "X-Amz-Signature");
  const canonical = canonicalRequest(request, covered, names, unsignedPayload);
  checkSignature(signature, stringToSign(amzDate, scope, canonical), amzDate, options);
  return { ok: true, payload: { kind: "unsigned" } };
}

// "<access key>/<yyyymmdd>/<region>/<service>/aws4_request", for this server's
// key, region and service, on the day of the request's own date.
function checkCredential(credential: string, amzDate: string, options: VerifierOptions, malformed: string): string {
  const parts = credential.split("/");
  if (parts.length !== 5) throw refuse(malformed, "the credential must be <access key>/<date>/<region>/<service>/aws4_request");
  const [accessKey, day, region, service, terminator] = parts as [string, string, string, string, string];
  if (!equalText(accessKey, options.credentials.accessKey)) {
    throw refuse("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.");
  }
  if (day !== amzDate.slice(0, 8)) throw refuse(malformed, `the credential's date ${day} is not the request's date ${amzDate.slice(0, 8)}`);
  if (region !== options.region) throw refuse(malformed, `the region '${region}' is wrong; expecting '${options.region}'`);
  if (service !== options.service) throw refuse(malformed, `the service '${service}' is wrong; expecting '${options.service}'`);
  if (terminator !== "aws4_request") throw refuse(malformed, "the credential must end in aws4_request");
  return parts.slice(1).join("/");
}

// The signed headers: sorted lower-case names, host among them, each one
// present, and every x-amz-* header of the request among them.
function checkSignedHeaders(list: string, headers: RequestToVerify["headers"]): string[] {
  const names = list.split(";");
  if (names.some((name) => !/^[a-z0-9-]+$/.test(name))) throw refuse("AccessDenied", "SignedHeaders must be lower-case header names separated by ';'");
  if (!names.includes("host")) throw refuse("AccessDenied", "the host header must be signed");
  for (const name of names) {
    if (headers[name] === undefined) throw refuse("AccessDenied", `the signed header ${name} is not in the request`);
  }
  for (const name of Object.keys(headers)) {
    if (name.startsWith("x-amz-") && !names.includes(name)) throw refuse("AccessDenied", `the header ${name} must be signed`);
  }
  return [...names].sort();
}

function canonicalRequest(request: RequestToVerify, query: QueryParam[], signedHeaders: string[], payloadHash: string): string {
  const headerLines = signedHeaders.map((name) => `${name}:${(request.headers[name] ?? []).map(canonicalHeaderValue).join(",")}\n`);
  return [
    request.method.toUpperCase(),
    canonicalUri(request.url),
    canonicalQuery(query),
    headerLines.join(""),
    signedHeaders.join(";"),
    payloadHash,
  ].join("\n");
}

function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return [algorithm, amzDate, scope, sha256Hex(canonical)].join("\n");
}

function checkSignature(provided: string, toSign: string, amzDate: string, options: VerifierOptions): void {
  const day = amzDate.slice(0, 8);
  let key: Buffer = hmac(`AWS4${options.credentials.secretKey}`, day);
  for (const part of [options.region, options.service, "aws4_request"]) key = hmac(key, part);
  const expected = hmac(key, toSign).toString("hex");
  if (!equalText(provided, expected)) {
    throw refuse("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your key and signing method.");
  }
}

type QueryParam = [name: string, value: string];

function parseQuery(url: string): QueryParam[] {
  const q = url.indexOf("?");
  if (q < 0) return [];
  return url
    .slice(q + 1)
    .split("&")
    .filter((pair) => pair !== "")
    .map((pair) => {
      const eq = pair.indexOf("=");
      return eq < 0 ? [decode(pair), ""] : [decode(pair.slice(0, eq)), decode(pair.slice(eq + 1))];
    });
}

// Each path segment decoded and encoded again the one way AWS does; S3 does
// not normalise "." or ".." segments.
function canonicalUri(url: string): string {
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  if (!path.startsWith("/")) throw refuse("AccessDenied", "the request path must start with /");
  return path.split("/").map((segment) => awsEncode(decode(segment))).join("/");
}

function canonicalQuery(query: QueryParam[]): string {
  return query
    .map(([name, value]) => [awsEncode(name), awsEncode(value)] as const)
    .sort(([an, av], [bn, bv]) => (an < bn ? -1 : an > bn ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join("&");
}

function canonicalHeaderValue(value: string): string {
  return value.trim().replace(/ +/g, " ");
}

// Everything but A-Z a-z 0-9 - _ . ~ as %XX of its UTF-8 bytes.
function awsEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw refuse("AccessDenied", "the request URL has an invalid percent-encoding");
  }
}

function parseAmzDate(text: string, malformed: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  const time = m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : undefined;
  if (!time || time.toISOString().replace(/[-:]|\.\d{3}/g, "") !== text) {
    throw refuse(malformed, "the request date must be in the form yyyyMMddTHHmmssZ");
  }
  return time;
}

function single(headers: RequestToVerify["headers"], name: string, code = "AccessDenied", missing = `the ${name} header is missing`): string {
  const values = headers[name];
  if (!values || values.length === 0) throw refuse(code, missing);
  if (values.length > 1) throw refuse(code, `the ${name} header must be sent once`);
  return values[0]!;
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data, "utf8").digest();
}

function sha256Hex(data: string): string {
  return createHash("sha256").update(data, "utf8").digest("hex");
}

function equalText(a: string, b: string): boolean {
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y) && a === b;
}
