import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { ensureLocalCa } from "@otto/kit/local-ca";

export interface GitHttpsServer {
  // https://127.0.0.1:PORT; a repository at `root/acme/app.git` is at `${url}/acme/app.git`.
  url: string;
  // The CA that signed its certificate (PEM file, readable by everyone).
  caFile: string;
  // Every git request, in order: its repository's path and its Authorization header.
  gitRequests: { path: string; authorization: string | undefined }[];
  // Every other request (a forge API call: commit statuses), as method and path.
  apiCalls: string[];
  close(): Promise<void>;
}

// A forge's git over HTTPS for a test: git's own smart HTTP server (git
// http-backend, run as CGI) for the bare repositories under `root`, served
// only to HTTP Basic `user`:`token` (those under `root/public` to anyone);
// anything else answers 201 with `{}`, as a forge's API takes a commit status.
export async function startGitHttpsServer(root: string, tlsDir: string, user: string, token: string): Promise<GitHttpsServer> {
  const files = await (await ensureLocalCa(tlsDir)).issue("forge", "forge");
  const expected = `Basic ${Buffer.from(`${user}:${token}`).toString("base64")}`;
  const gitRequests: { path: string; authorization: string | undefined }[] = [];
  const apiCalls: string[] = [];
  const server: Server = createServer({ cert: await readFile(files.cert), key: await readFile(files.key) }, (req, res) => {
    const url = new URL(req.url ?? "/", "https://forge.invalid");
    if (!/\/(info\/refs|git-upload-pack|git-receive-pack)$/.test(url.pathname)) {
      apiCalls.push(`${req.method} ${url.pathname}`);
      req.resume();
      res.writeHead(201, { "content-type": "application/json" }).end("{}");
      return;
    }
    gitRequests.push({ path: url.pathname, authorization: req.headers.authorization });
    if (req.headers.authorization !== expected && !url.pathname.startsWith("/public/")) {
      req.resume();
      res.writeHead(401, { "www-authenticate": 'Basic realm="git"' }).end();
      return;
    }
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH,
        HOME: root,
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_CONFIG_GLOBAL: "/dev/null",
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        REQUEST_METHOD: req.method ?? "GET",
        PATH_INFO: url.pathname,
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        ...(req.headers["content-length"] ? { CONTENT_LENGTH: req.headers["content-length"] } : {}),
        HTTP_CONTENT_ENCODING: req.headers["content-encoding"] ?? "",
        HTTP_GIT_PROTOCOL: String(req.headers["git-protocol"] ?? ""),
        REMOTE_USER: user,
        REMOTE_ADDR: "127.0.0.1",
      },
      stdio: ["pipe", "pipe", "inherit"],
    });
    req.pipe(cgi.stdin);
    let head = Buffer.alloc(0);
    let answered = false;
    cgi.stdout.on("data", (chunk: Buffer) => {
      if (answered) return void res.write(chunk);
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      const headers: Record<string, string> = {};
      let status = 200;
      for (const line of head.subarray(0, end).toString().split("\r\n")) {
        const colon = line.indexOf(":");
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        if (name === "status") status = Number(value.split(" ")[0]);
        else headers[name] = value;
      }
      answered = true;
      res.writeHead(status, headers);
      res.write(head.subarray(end + 4));
    });
    cgi.stdout.on("end", () => res.end());
    cgi.on("error", () => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caFile: join(tlsDir, "ca.pem"),
    gitRequests,
    apiCalls,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
