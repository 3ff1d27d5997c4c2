import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span } from "@opentelemetry/api";
import { whenStreamEnds } from "./stream-end.ts";
import { tracer } from "./telemetry.ts";

// Calls that run all the time whether or not anything happens (long polls,
// heartbeats, registry leases) would bury the runs' traces: never traced.
const untraced = new Set([
  "otto.v1.AgentService/AcquireTask",
  "otto.v1.AgentService/HeartbeatTask",
  "otto.v1.RegistryService/Register",
  "otto.v1.RegistryService/Renew",
  "otto.v1.RegistryService/Resolve",
  "otto.v1.RegistryService/Deregister",
]);

const headerGetter = {
  get: (headers: Headers, key: string) => headers.get(key) ?? undefined,
  keys: (headers: Headers) => [...headers.keys()],
};
const headerSetter = { set: (headers: Headers, key: string, value: string) => headers.set(key, value) };

// One SERVER span per RPC handled, a child of the caller's W3C trace context.
export const traceServerCalls: Interceptor = (next) => async (req) => {
  const name = `${req.service.typeName}/${req.method.name}`;
  if (untraced.has(name)) return next(req);
  const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
  const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes: rpcAttributes(req) }, parent);
  return traced(span, trace.setSpan(parent, span), () => next(req));
};

// One CLIENT span per RPC made, whose context travels in the request headers.
export const traceClientCalls: Interceptor = (next) => async (req) => {
  const name = `${req.service.typeName}/${req.method.name}`;
  if (untraced.has(name)) return next(req);
  const parent = context.active();
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes: rpcAttributes(req) }, parent);
  const ctx = trace.setSpan(parent, span);
  propagation.inject(ctx, req.header, headerSetter);
  return traced(span, ctx, () => next(req));
};

async function traced<R extends { stream: boolean; message: unknown }>(span: Span, ctx: Context, call: () => Promise<R>): Promise<R> {
  let response: R;
  try {
    response = await context.with(ctx, call);
  } catch (err) {
    fail(span, err);
    span.end();
    throw err;
  }
  if (!response.stream) {
    span.end();
    return response;
  }
  // A stream's span lasts until the stream ends; its messages are produced
  // inside the span's context.
  return whenStreamEnds(
    response,
    (err) => {
      if (err !== undefined) fail(span, err);
      span.end();
    },
    (produce) => context.with(ctx, produce),
  );
}

function fail(span: Span, err: unknown) {
  const error = ConnectError.from(err);
  span.setAttribute("rpc.connect_rpc.error_code", codeToString(error.code));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.rawMessage });
}

function rpcAttributes(req: { service: { typeName: string }; method: { name: string } }) {
  return { "rpc.system": "connect_rpc", "rpc.service": req.service.typeName, "rpc.method": req.method.name };
}
