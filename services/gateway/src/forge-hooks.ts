import type http from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { ForgeHookService } from "@otto/gen/v1/forge_hook_service_pb";
import type { Logger } from "@otto/kit/log";
import type { ServiceCaller } from "@otto/kit/service-caller";

// POST /hooks/{github|gitea|gitlab}/{project}: a forge's webhook. It needs
// no API token: a coordinator checks its signature over the raw bytes,
// which are passed on untouched, and answers at once (the run's pipeline is
// read afterwards). 202 {"runId"} starts a run, 200 {"ignored"} does not.
export const maxHookBodyBytes = 25 * 1024 * 1024;
const hookPath = /^\/hooks\/(github|gitea|gitlab)\/([A-Za-z0-9][A-Za-z0-9._-]{0,99})\/?(?:\?.*)?$/;
const hookTimeoutMs = 10_000;
// Bodies read at once (each up to 25 MiB, held whole to be passed on), and
// how long one may take to arrive.
const maxHooksInFlight = 16;
const bodyTimeoutMs = 60_000;

const statusOfCode: Partial<Record<Code, number>> = {
  [Code.NotFound]: 404,
  [Code.Unauthenticated]: 401,
  [Code.InvalidArgument]: 400,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 409,
};

export function forgeHooks(peers: ServiceCaller, log: Logger) {
  let inFlight = 0;
  return (req: http.IncomingMessage, res: http.ServerResponse, invite?: () => void): boolean => {
    if (!req.url?.startsWith("/hooks/")) return false;
    if (inFlight >= maxHooksInFlight) {
      send(res, 503, { error: "Otto is taking as many webhooks as it can; the forge may deliver this one again" }, { "retry-after": "5" });
      return true;
    }
    inFlight++;
    void answer(req, res, invite)
      .catch((err) => {
        log.error("webhook failed", { err });
        if (!res.headersSent) send(res, 500, { error: "internal error" });
      })
      .finally(() => inFlight--);
    return true;
  };

  async function answer(req: http.IncomingMessage, res: http.ServerResponse, invite?: () => void) {
    const match = hookPath.exec(req.url ?? "");
    if (!match) return send(res, 404, { error: "webhooks are POST /hooks/{github|gitea|gitlab}/{project}" });
    if (req.method !== "POST") return send(res, 405, { error: "webhooks are POSTed" }, { allow: "POST" });
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > maxHookBodyBytes) return send(res, 413, { error: `a webhook body may be at most ${maxHookBodyBytes} bytes` });
    invite?.();
    const body = await readBody(req);
    if (body === undefined) return send(res, 413, { error: `a webhook body may be at most ${maxHookBodyBytes} bytes` });
    const [, forge, project] = match;
    try {
      const answer = await peers.call("coordinator", ForgeHookService, (c) =>
        c.receiveHook({ forge, project, headers: headersOf(req), body }, { timeoutMs: hookTimeoutMs }),
      );
      if (answer.runId) return send(res, 202, { runId: answer.runId });
      return send(res, 200, { ignored: answer.ignored });
    } catch (err) {
      const error = ConnectError.from(err);
      const status = statusOfCode[error.code];
      if (status) return send(res, status, { error: error.rawMessage });
      log.warn("webhook not taken", { forge, project, err: error.message });
      return send(res, 503, { error: `Otto could not take the webhook now (${error.rawMessage}); the forge may deliver it again` });
    }
  }
}

// The body, or undefined past the limit.
async function readBody(req: http.IncomingMessage): Promise<Uint8Array | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  const slow = setTimeout(() => req.destroy(new Error(`the webhook's body took longer than ${bodyTimeoutMs / 1000} s to arrive`)), bodyTimeoutMs);
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > maxHookBodyBytes) return undefined;
      chunks.push(chunk);
    }
  } finally {
    clearTimeout(slow);
  }
  return Buffer.concat(chunks);
}

function headersOf(req: http.IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  let count = 0;
  for (const [name, value] of Object.entries(req.headers)) {
    // (HTTP/2's pseudo-headers, :path and the like, are not the forge's.)
    if (value === undefined || name === "authorization" || name === "cookie" || name.startsWith(":")) continue;
    if (++count > 200) break;
    headers[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return headers;
}

function send(res: http.ServerResponse, status: number, body: object, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}
