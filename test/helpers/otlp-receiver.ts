// A small OTLP/HTTP trace receiver for tests: it stores the spans of every
// JSON export (http/json) and the raw requests of every export (any protocol).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  statusCode: number;
  startNanos: bigint;
  endNanos: bigint;
  attributes: Record<string, string | number | boolean>;
}

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  requests: Array<{ path: string; contentType: string; bytes: number }>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const requests: OtlpReceiver["requests"] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const contentType = req.headers["content-type"] ?? "";
      requests.push({ path: req.url ?? "", contentType, bytes: body.length });
      if (req.url === "/v1/traces" && contentType.startsWith("application/json")) spans.push(...spansOf(JSON.parse(body.toString())));
      res.writeHead(200, { "content-type": contentType.startsWith("application/json") ? "application/json" : "application/x-protobuf" });
      res.end(contentType.startsWith("application/json") ? "{}" : "");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function spansOf(request: any): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const service = String(attributesOf(resourceSpans.resource?.attributes)["service.name"] ?? "");
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        spans.push({
          service,
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId ?? "",
          name: span.name,
          kind: span.kind,
          statusCode: span.status?.code ?? 0,
          startNanos: BigInt(span.startTimeUnixNano),
          endNanos: BigInt(span.endTimeUnixNano),
          attributes: attributesOf(span.attributes),
        });
      }
    }
  }
  return spans;
}

function attributesOf(list: Array<{ key: string; value: Record<string, unknown> }> = []) {
  const attributes: Record<string, string | number | boolean> = {};
  for (const { key, value } of list) {
    const v = value.stringValue ?? value.intValue ?? value.boolValue ?? value.doubleValue;
    attributes[key] = typeof v === "string" && "intValue" in value ? Number(v) : (v as string | number | boolean);
  }
  return attributes;
}

// The spans of one trace as an indented tree, children in start order:
//   otto-gateway  otto.v1.RunService/SubmitRun
//     otto-parser  otto.v1.ParserService/ParsePipeline ...
export function renderTrace(spans: ReceivedSpan[], hide: (span: ReceivedSpan) => boolean = () => false): string {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, ReceivedSpan[]>();
  for (const span of spans) {
    const parent = ids.has(span.parentSpanId) ? span.parentSpanId : "";
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const lines: string[] = [];
  const walk = (parent: string, depth: number) => {
    for (const span of (children.get(parent) ?? []).sort((a, b) => (a.startNanos < b.startNanos ? -1 : a.startNanos > b.startNanos ? 1 : 0))) {
      if (hide(span)) continue;
      const ms = Number(span.endNanos - span.startNanos) / 1e6;
      const error = span.statusCode === 2 ? "  ERROR" : "";
      lines.push(`${"  ".repeat(depth)}${span.service}  ${span.name}  ${ms.toFixed(1)} ms${error}`);
      walk(span.spanId, depth + 1);
    }
  };
  walk("", 0);
  return lines.join("\n");
}
