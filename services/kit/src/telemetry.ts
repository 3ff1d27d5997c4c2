import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import { onShutdown } from "./shutdown.ts";

export const tracer = trace.getTracer("otto");

export interface Telemetry {
  enabled: boolean;
  shutdown(): Promise<void>;
}

// Starts the OpenTelemetry SDK for this process when an OTLP endpoint is
// configured (the standard OTEL_* variables: endpoint, protocol http/protobuf
// or http/json, service name, sampler). Without one nothing is loaded and
// every span is a no-op.
// Spans still open at shutdown are flushed as its last step.
export async function startTelemetry(service: string): Promise<Telemetry> {
  const env = process.env;
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (!endpoint || env.OTEL_SDK_DISABLED === "true") return { enabled: false, shutdown: async () => {} };
  // Traces only, unless metrics or logs export is asked for explicitly.
  env.OTEL_METRICS_EXPORTER ??= "none";
  env.OTEL_LOGS_EXPORTER ??= "none";
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const sdk = new NodeSDK({ serviceName: env.OTEL_SERVICE_NAME || `otto-${service}`, instrumentations: [] });
  sdk.start();
  onShutdown("flush traces", () => sdk.shutdown());
  return { enabled: true, shutdown: () => sdk.shutdown() };
}

// The W3C trace context of `ctx` as one `traceparent` string ("" when there
// is no span), for storing with a run or passing through a queue.
export function traceParentOf(ctx: Context = context.active()): string {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier.traceparent ?? "";
}

export function contextFromTraceParent(traceparent: string): Context {
  return traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
}

// Runs `work` in a new span that ends with it and records its failure.
export async function inSpan<T>(
  name: string,
  attributes: Record<string, string | number | boolean>,
  work: (span: Span) => Promise<T>,
  parent: Context = context.active(),
): Promise<T> {
  const span = tracer.startSpan(name, { attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => work(span));
  } catch (err) {
    markFailed(span, err);
    throw err;
  } finally {
    span.end();
  }
}

export function markFailed(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

// Trace and span id of the active span, for log lines.
export function activeTraceIds(): { trace_id: string; span_id: string } | undefined {
  const spanContext = trace.getSpan(context.active())?.spanContext();
  if (!spanContext || !trace.isSpanContextValid(spanContext)) return undefined;
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}
