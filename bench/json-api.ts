import https from "node:https";
import http from "node:http";

// Otto's public API as curl calls it: POST of a JSON body with a bearer
// token, over keep-alive connections (one per client at most).
export interface JsonApi {
  call<T = any>(method: string, body: unknown): Promise<T>;
  close(): void;
}

export function jsonApi(options: { baseUrl: string; token?: string; ca?: Buffer; clients: number }): JsonApi {
  const secure = options.baseUrl.startsWith("https:");
  const agent = secure
    ? new https.Agent({ keepAlive: true, maxSockets: options.clients, ca: options.ca })
    : new http.Agent({ keepAlive: true, maxSockets: options.clients });
  const request = secure ? https.request : http.request;
  return {
    call(method, body) {
      const payload = Buffer.from(JSON.stringify(body));
      return new Promise((resolve, reject) => {
        const req = request(
          `${options.baseUrl}/otto.v1.${method}`,
          {
            method: "POST",
            agent,
            headers: {
              "content-type": "application/json",
              "content-length": payload.length,
              ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (chunk: Buffer) => chunks.push(chunk));
            res.on("end", () => {
              const text = Buffer.concat(chunks).toString("utf8");
              if (res.statusCode === 200) resolve(JSON.parse(text));
              else reject(new Error(`${method}: HTTP ${res.statusCode} ${text}`));
            });
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        req.end(payload);
      });
    },
    close: () => agent.destroy(),
  };
}
