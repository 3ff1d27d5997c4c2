import type http from "node:http";
import { readFileSync, readdirSync } from "node:fs";
import { dirname, extname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { Logger } from "@otto/kit/log";

// The web UI (web/, built into web/assets): one page, answered at / and at
// every address the page itself knows (/runs/{id}, /runs/{id}/jobs/{job},
// /agents, /projects), and its bundle and styles under /ui/, whose names
// carry their content's hash and so may be kept for a year. The page calls
// the API from the same origin with a bearer token (no cookie), so nothing
// here needs a token.

// No inline script or style, nothing from elsewhere, no plugins, no <base>,
// and no framing (clickjacking).
export const contentSecurityPolicy = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

const safetyHeaders = {
  "content-security-policy": contentSecurityPolicy,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const typeOf: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

interface Asset {
  type: string;
  body: Buffer;
  gzipped: Buffer;
  cacheControl: string;
}

const pagePath = /^\/(?:runs\/[0-9a-f-]{36}(?:\/jobs\/[^/]+)?\/?|agents\/?|projects\/?)?$/;

export function webUiRoutes(log: Logger, assetsDir = defaultAssetsDir()) {
  const assets = loadAssets(assetsDir, log);
  const page = assets.get("/index.html");
  return (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const path = (req.url ?? "/").split(/[?#]/, 1)[0];
    if (pagePath.test(path)) {
      if (!page) return notFound(res, "the web UI is not built (web/assets is missing)");
      return send(req, res, page);
    }
    if (!path.startsWith("/ui/")) return false;
    const asset = assets.get(path);
    return asset ? send(req, res, asset) : notFound(res, `no such file: ${path}`);
  };
}

function defaultAssetsDir(): string {
  return dirname(fileURLToPath(import.meta.resolve("@otto/web/assets/index.html")));
}

function loadAssets(dir: string, log: Logger): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  let names: string[];
  try {
    names = readdirSync(dir, { recursive: true, encoding: "utf8" });
  } catch (err) {
    log.warn("the web UI is not served: its assets cannot be read", { dir, err });
    return assets;
  }
  for (const name of names) {
    const file = join(dir, name);
    const type = typeOf[extname(name)];
    if (!type) continue;
    const body = readFileSync(file);
    const path = `/${relative(dir, file).split("\\").join("/")}`;
    assets.set(path, {
      type,
      body,
      gzipped: gzipSync(body, { level: 9 }),
      // The page must be asked for again (it names the current bundle); the
      // hashed files never change.
      cacheControl: path === "/index.html" ? "no-cache" : "public, max-age=31536000, immutable",
    });
  }
  return assets;
}

function send(req: http.IncomingMessage, res: http.ServerResponse, asset: Asset): true {
  const gzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? "")) && asset.gzipped.length < asset.body.length;
  const body = gzip ? asset.gzipped : asset.body;
  res.writeHead(200, {
    ...safetyHeaders,
    "content-type": asset.type,
    "content-length": body.length,
    "cache-control": asset.cacheControl,
    vary: "accept-encoding",
    ...(gzip ? { "content-encoding": "gzip" } : {}),
  });
  res.end(req.method === "HEAD" ? undefined : body);
  return true;
}

function notFound(res: http.ServerResponse, message: string): true {
  res.writeHead(404, { ...safetyHeaders, "content-type": "text/plain; charset=utf-8", "cache-control": "no-cache" });
  res.end(`${message}\n`);
  return true;
}
