import type http from "node:http";
import { RunService } from "@otto/gen/v1/run_service_pb";
import type { CredentialVerifier } from "@otto/kit/authorize";
import type { Logger } from "@otto/kit/log";
import type { ServiceCaller } from "@otto/kit/service-caller";
import { cctrayXml } from "./cctray-xml.ts";
import { badgeState, badgeSvg } from "./status-badge.ts";
import { refuseToken } from "./http-token.ts";

// GET /cctray.xml and GET /badges/{pipeline}.svg: the pipelines' states for
// build monitors and READMEs, which cannot send a bearer token of their
// own: an API token with runs:read as a bearer token, or as the password of
// HTTP Basic authentication (any user name).
const badgePath = /^\/badges\/([^/?]{1,600})\.svg$/;

export interface StatusFeedOptions {
  // Where run pages are (OTTO_PUBLIC_URL); else the address the request came to.
  publicUrl: string;
  insecure: boolean;
}

export function statusFeeds(peers: ServiceCaller, credentials: CredentialVerifier, log: Logger, options: StatusFeedOptions) {
  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const path = (req.url ?? "").split("?")[0];
    const badge = badgePath.exec(path);
    if (path !== "/cctray.xml" && !badge) return false;
    void answer(req, res, badge ? decodeName(badge[1]) : undefined).catch((err) => {
      log.error("status feed failed", { err });
      if (!res.headersSent) plain(res, 503, "Otto cannot read the runs now; try again\n");
      else res.destroy();
    });
    return true;
  };

  async function answer(req: http.IncomingMessage, res: http.ServerResponse, badgeName: string | undefined) {
    if (req.method !== "GET" && req.method !== "HEAD") return plain(res, 405, "GET only\n", { allow: "GET, HEAD" });
    if (badgeName === "") return plain(res, 404, "no such badge\n");
    const refusal = options.insecure ? undefined : await refuseToken(credentials, req.headers.authorization, "runs:read");
    if (refusal) return plain(res, refusal.status, `${refusal.message}\n`, refusal.status === 401 ? { "www-authenticate": 'Basic realm="Otto"' } : {});
    const { pipelines } = await peers.call("coordinator", RunService, (c) => c.listPipelines({ name: badgeName ?? "" }, { timeoutMs: 10_000 }), {
      idempotent: true,
      retryForMs: 5_000,
    });
    if (badgeName === undefined) {
      // (An HTTP/2 request names its host in :authority.)
      const host = req.headers.host ?? req.headers[":authority"] ?? "localhost";
      const base = (options.publicUrl || `${options.insecure ? "http" : "https"}://${host}`).replace(/\/+$/, "");
      return send(req, res, 200, "application/xml; charset=utf-8", cctrayXml(pipelines, (runId) => `${base}/runs/${encodeURIComponent(runId)}`));
    }
    const pipeline = pipelines.find((p) => p.name === badgeName);
    return send(req, res, pipeline ? 200 : 404, "image/svg+xml; charset=utf-8", badgeSvg(badgeName, badgeState(pipeline)));
  }
}

function decodeName(text: string): string {
  try {
    const name = decodeURIComponent(text);
    return name.length <= 200 ? name : "";
  } catch {
    return "";
  }
}

function send(req: http.IncomingMessage, res: http.ServerResponse, status: number, type: string, body: string) {
  res.writeHead(status, { "content-type": type, "cache-control": "no-cache", "content-length": Buffer.byteLength(body) });
  res.end(req.method === "HEAD" ? undefined : body);
}

function plain(res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  res.end(text);
}
