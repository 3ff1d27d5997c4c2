import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import type { ForgeKind } from "./forge-kind.ts";

// Whether a webhook delivery carries proof that it was sent by someone who
// knows the hook's secret. Checked over the raw body bytes, before any
// parsing, because re-serialised JSON would not hash the same.
export function hookIsSigned(kind: ForgeKind, headers: Record<string, string>, body: Uint8Array, secret: string): boolean {
  if (secret === "") return false;
  switch (kind) {
    case "github":
      return hubSignatureMatches(headers["x-hub-signature-256"], body, secret);
    case "gitea":
      return giteaSigned(headers, body, secret);
    case "gitlab":
      return tokenMatches(headers["x-gitlab-token"], secret);
    default:
      return false;
  }
}

// Gitea and Forgejo send the same HMAC under several names. Any one of them
// suffices, but every one that is present must be right: a delivery that
// carries a wrong signature next to a right one was tampered with.
function giteaSigned(headers: Record<string, string>, body: Uint8Array, secret: string): boolean {
  const bare = [headers["x-gitea-signature"], headers["x-forgejo-signature"]].filter((header) => header !== undefined);
  const hub = headers["x-hub-signature-256"];
  if (bare.length === 0 && hub === undefined) return false;
  return bare.every((hex) => bareHexMatches(hex, body, secret)) && (hub === undefined || hubSignatureMatches(hub, body, secret));
}

function hubSignatureMatches(header: string | undefined, body: Uint8Array, secret: string): boolean {
  if (header === undefined || !header.startsWith("sha256=")) return false;
  return bareHexMatches(header.slice("sha256=".length), body, secret);
}

function bareHexMatches(hex: string | undefined, body: Uint8Array, secret: string): boolean {
  if (hex === undefined || !/^[0-9a-fA-F]{64}$/.test(hex)) return false;
  const expected = createHmac("sha256", secret).update(body).digest();
  return timingSafeEqual(Buffer.from(hex, "hex"), expected);
}

// GitLab sends the secret itself. Comparing digests keeps both sides the same
// length, so neither the comparison's time nor an exception tells how long
// the secret is.
function tokenMatches(token: string | undefined, secret: string): boolean {
  if (token === undefined || token === "") return false;
  return timingSafeEqual(sha256(token), sha256(secret));
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
