import https from "node:https";
import http from "node:http";

// RPCs each process has handled so far, by method (from its /metrics), as
// "process method" -> count; processes of one kind are summed under the
// kind ("coordinators", "agents").
export async function rpcCounts(processes: Array<{ name: string; url: string | undefined }>, ca?: Buffer): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  await Promise.all(
    processes.map(async ({ name, url }) => {
      if (!url || name === "s3") return;
      const text = await get(`${url}/metrics`, ca).catch(() => "");
      const kind = /^(coordinator|agent)-\d+$/.exec(name)?.[1];
      const who = kind ? `${kind}s` : name;
      for (const match of text.matchAll(/^otto_rpc_requests_total\{method="otto\.v1\.([^"]+)",code="([^"]+)"\} (\d+)/gm)) {
        const key = `${who} ${match[1]}${match[2] === "ok" ? "" : ` (${match[2]})`}`;
        counts[key] = (counts[key] ?? 0) + Number(match[3]);
      }
    }),
  );
  return counts;
}

// Calls per unit between two counts, most frequent first, dropping those
// below `min`.
export function rpcsPer(before: Record<string, number>, after: Record<string, number>, units: number, min = 0.01): Array<[string, number]> {
  return Object.entries(after)
    .map(([key, n]) => [key, Math.round(((n - (before[key] ?? 0)) / units) * 100) / 100] as [string, number])
    .filter(([, n]) => n >= min)
    .sort((a, b) => b[1] - a[1]);
}

function get(url: string, ca?: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith("https:") ? https.get(url, { ca }, answer) : http.get(url, answer);
    function answer(res: http.IncomingMessage) {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
      res.on("error", reject);
    }
    request.on("error", reject);
  });
}
