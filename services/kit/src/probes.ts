import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "./log.ts";
import { metrics } from "./metrics.ts";

// /healthz (the process lives), /readyz (it takes work now) and /metrics
// (Prometheus text): answers one of them and says true, or says false.
export function answerProbe(req: http.IncomingMessage, res: http.ServerResponse, ready: boolean, log: Logger): boolean {
  if (req.url === "/healthz") return plain(res, 200, "ok\n");
  if (req.url === "/readyz") return ready ? plain(res, 200, "ready\n") : plain(res, 503, "not ready\n");
  if (req.url !== "/metrics") return false;
  metrics.metrics().then(
    (text) => {
      res.writeHead(200, { "content-type": metrics.contentType });
      res.end(text);
    },
    (err) => {
      log.warn("could not collect metrics", { err });
      plain(res, 500, "could not collect metrics\n");
    },
  );
  return true;
}

export function plain(res: http.ServerResponse, status: number, text: string): true {
  res.writeHead(status, { "content-type": "text/plain" });
  res.end(text);
  return true;
}

export interface ProbeServer {
  url: string;
  setReady(ready: boolean): void;
  close(): Promise<void>;
}

// A plain HTTP server with the probes alone, for a process that serves no
// API (an agent): it says nothing a caller could use against it.
export async function startProbeServer(options: { host: string; port: number; log: Logger }): Promise<ProbeServer> {
  let ready = false;
  const server = http.createServer((req, res) => {
    if (!answerProbe(req, res, ready, options.log)) plain(res, 404, "not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${port}`,
    setReady: (value) => void (ready = value),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
