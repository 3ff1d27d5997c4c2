// What the gateway serves of the web UI, on a bare HTTP server (no Otto):
// the page at its addresses, hashed assets kept for a year, the same
// Content-Security-Policy on all of them, and everything else left to the
// API. And the page's sources never hand a string to the HTML parser.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { createLogger } from "@otto/kit/log";
import { contentSecurityPolicy, webUiRoutes } from "@otto/gateway/web-ui";

const root = join(import.meta.dirname, "..");

describe("the web UI's routes", () => {
  let server: http.Server;
  let base = "";
  before(async () => {
    const routes = webUiRoutes(createLogger("web-ui-test"));
    server = http.createServer((req, res) => {
      if (!routes(req, res)) {
        res.writeHead(418);
        res.end("not the web UI's");
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      http
        // The path as given, not normalised by URL parsing.
        .request({ host: "127.0.0.1", port: new URL(base).port, path, method, headers }, (res) => {
          const parts: Buffer[] = [];
          res.on("data", (part: Buffer) => parts.push(part));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        })
        .on("error", reject)
        .end();
    });

  it("answers the page at /, /runs/{id}, /runs/{id}/jobs/{job}, /agents and /projects, never cached, with the policy", async () => {
    const id = "5d0c0a8e-3b7e-4f7a-9d51-2f0f8e4c1a11";
    for (const path of ["/", `/runs/${id}`, `/runs/${id}/jobs/build`, `/runs/${id}/jobs/test%5Bos%3Dlinux%5D?attempt=2`, "/agents", "/projects", "/projects/"]) {
      const answer = await get(path);
      assert.equal(answer.status, 200, path);
      assert.match(String(answer.headers["content-type"]), /^text\/html/);
      assert.equal(answer.headers["cache-control"], "no-cache");
      assert.equal(answer.headers["content-security-policy"], contentSecurityPolicy);
      assert.equal(answer.headers["x-content-type-options"], "nosniff");
      assert.equal(answer.headers["x-frame-options"], "DENY");
      const html = answer.body.toString("utf8");
      assert.match(html, /<script type="module" src="\/ui\/app-[A-Z0-9]+\.js"><\/script>/);
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, "no inline script");
      assert.doesNotMatch(html, /\sstyle=|<style/, "no inline style");
    }
    const head = await get("/", {}, "HEAD");
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  it("forbids inline scripts, plugins, <base> and framing", () => {
    const directives = new Map(contentSecurityPolicy.split(/;\s*/).map((d) => [d.split(" ")[0], d.split(" ").slice(1).join(" ")]));
    assert.equal(directives.get("default-src"), "'none'");
    assert.equal(directives.get("script-src"), "'self'");
    assert.equal(directives.get("object-src"), "'none'");
    assert.equal(directives.get("base-uri"), "'none'");
    assert.equal(directives.get("frame-ancestors"), "'none'");
    assert.ok(!contentSecurityPolicy.includes("unsafe"), contentSecurityPolicy);
  });

  it("serves the hashed assets for a year, gzipped when asked, and 404 for others under /ui/", async () => {
    const html = (await get("/")).body.toString("utf8");
    const paths = [...html.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]);
    assert.equal(paths.length, 2, html);
    for (const path of paths) {
      const plain = await get(path);
      assert.equal(plain.status, 200, path);
      assert.equal(plain.headers["cache-control"], "public, max-age=31536000, immutable");
      assert.equal(plain.headers["content-security-policy"], contentSecurityPolicy);
      assert.match(String(plain.headers["content-type"]), path.endsWith(".js") ? /^text\/javascript/ : /^text\/css/);
      const zipped = await get(path, { "accept-encoding": "gzip, br" });
      assert.equal(zipped.headers["content-encoding"], "gzip");
      assert.ok(gunzipSync(zipped.body).equals(plain.body));
    }
    assert.equal((await get("/ui/app-NOTHERE.js")).status, 404);
    assert.equal((await get("/ui/../package.json")).status, 404);
  });

  it("leaves the API, the webhooks, other paths and other methods alone", async () => {
    for (const path of ["/otto.v1.RunService/ListRuns", "/hooks/github/app", "/runs/not-a-run", "/favicon.ico", "/healthz", "/agents/x", "/projectsx"]) {
      assert.equal((await get(path)).status, 418, path);
    }
    assert.equal((await get("/", {}, "POST")).status, 418);
  });
});

describe("the web UI's sources", () => {
  it("never hand a string to the HTML parser or to eval", async () => {
    const dir = join(root, "web", "src");
    const offending: string[] = [];
    for (const name of await readdir(dir, { recursive: true })) {
      if (!/\.(ts|tsx)$/.test(name)) continue;
      const text = await readFile(join(dir, name), "utf8");
      for (const sink of ["innerHTML", "outerHTML", "dangerouslySetInnerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc"]) {
        if (text.includes(sink)) offending.push(`${name}: ${sink}`);
      }
    }
    assert.deepEqual(offending, []);
  });
});
