// One run is one trace: every process exports OTLP spans to a real receiver,
// and the spans of a run link up from the caller's SubmitRun to each step.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { AsyncLocalStorage } from "node:async_hooks";
import { context, propagation, ROOT_CONTEXT, trace as otelTrace, type Context, type ContextManager } from "@opentelemetry/api";
import { submit } from "@otto/sdk";
import { postJson, startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { renderTrace, startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./helpers/otlp-receiver.ts";

const pipelineYaml = `name: traced
jobs:
  build:
    steps:
      - name: compile
        run: echo compiled
  test:
    needs: [build]
    steps:
      - name: unit
        run: echo unit tests passed
      - name: broken
        run: exit 3
`;

const services = ["otto-gateway", "otto-parser", "otto-coordinator", "otto-agent", "otto-objects"];

describe("tracing over OTLP http/json", () => {
  let otto: TestOtto;
  let receiver: OtlpReceiver;
  const traceId = randomBytes(16).toString("hex");
  const callerSpanId = randomBytes(8).toString("hex");
  let runId: string;
  let trace: ReceivedSpan[];

  before(async () => {
    receiver = await startOtlpReceiver();
    otto = await startTestOtto({
      agents: 1,
      // Every log goes to S3, so that its archival shows in the trace.
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTTO_LOG_INLINE_MAX_BYTES: "0",
      },
    });
    const submitted = await postJson(
      otto.gatewayUrl,
      "/otto.v1.RunService/SubmitRun",
      { pipelineYaml },
      { traceparent: `00-${traceId}-${callerSpanId}-01` },
    );
    assert.equal(submitted.status, 200, submitted.text);
    runId = submitted.json.run.id;
    await waitFor("the run to fail", async () => {
      const got = await postJson(otto.gatewayUrl, "/otto.v1.RunService/GetRun", { runId });
      return got.json.run.state === "RUN_STATE_FAILED";
    });
    // Spans arrive in batches: wait until the last pieces of the run are in.
    trace = await waitFor("the run's spans from every process", () => {
      const spans = receiver.spans.filter((s) => s.traceId === traceId);
      const archived = spans.filter((s) => s.name === "archive log").length;
      const complete =
        services.every((service) => spans.some((s) => s.service === service)) &&
        archived === 2 &&
        spans.some((s) => s.name === "step broken") &&
        // The agent ends a job's span, and exports it, after the job's last calls.
        spans.some((s) => s.name === "job test") &&
        spans.filter((s) => s.name === "otto.v1.AgentService/CompleteTask" && s.kind === 3).length >= 2 &&
        spans.filter((s) => s.name === "otto.v1.LogStoreService/CloseLog" && s.kind === 3).length >= 2 &&
        spans.filter((s) => s.name === "otto.v1.AgentService/CompleteTask" && s.kind === 2 && s.service === "otto-coordinator").length === 2;
      return complete && spans;
    });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
    await receiver?.close();
  });

  it("joins the trace of an SDK caller that uses OpenTelemetry", async () => {
    useCallerTelemetry();
    const caller = { traceId: randomBytes(16).toString("hex"), spanId: randomBytes(8).toString("hex"), traceFlags: 1 };
    await context.with(otelTrace.setSpanContext(ROOT_CONTEXT, caller), () => submit(otto.client, "name: sdk\njobs:\n  a:\n    steps:\n      - run: 'true'\n"));
    const submitSpan = await waitFor("the gateway's SubmitRun span in the caller's trace", () =>
      receiver.spans.find((s) => s.traceId === caller.traceId && s.service === "otto-gateway" && s.name === "otto.v1.RunService/SubmitRun" && s.kind === 2),
    );
    assert.equal(submitSpan.parentSpanId, caller.spanId, "a child of the caller's span");
  });

  it("joins the caller's trace: the gateway's SubmitRun is the child of the caller's span", () => {
    const submit = trace.find((s) => s.service === "otto-gateway" && s.name === "otto.v1.RunService/SubmitRun" && s.kind === 2);
    assert.ok(submit, "gateway SubmitRun span");
    assert.equal(submit.parentSpanId, callerSpanId);
    assert.equal(submit.kind, 2, "SERVER");
    assert.equal(submit.attributes["rpc.system"], "connect_rpc");
    assert.equal(submit.attributes["rpc.service"], "otto.v1.RunService");
    assert.equal(submit.attributes["rpc.method"], "SubmitRun");
  });

  it("links every span of the run to a parent in the same trace", (t) => {
    t.diagnostic(`the run's trace, without database queries:\n${renderTrace(trace, (s) => s.name.startsWith("pg "))}`);
    const ids = new Set(trace.map((s) => s.spanId));
    const orphans = trace.filter((s) => s.parentSpanId !== callerSpanId && !ids.has(s.parentSpanId));
    assert.deepEqual(orphans.map((s) => `${s.service} ${s.name}`), []);
  });

  it("follows the run through parser, coordinator, agent and objects", () => {
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const parentOf = (span: ReceivedSpan) => byId.get(span.parentSpanId);
    const one = (service: string, name: string) => {
      const span = trace.find((s) => s.service === service && s.name === name);
      assert.ok(span, `${service} span "${name}"`);
      return span;
    };
    const parse = one("otto-parser", "otto.v1.ParserService/ParsePipeline");
    assert.equal(parentOf(parentOf(parse)!)?.name, "otto.v1.RunService/SubmitRun", "parse called from the gateway's SubmitRun");
    const coordinatorSubmit = one("otto-coordinator", "otto.v1.RunService/SubmitRun");
    assert.equal(parentOf(coordinatorSubmit)?.service, "otto-gateway");
    const advance = trace.find((s) => s.name === "advance run" && s.parentSpanId === coordinatorSubmit.spanId);
    assert.ok(advance, "the submit advances the run");
    const dispatch = one("otto-coordinator", "dispatch build");
    assert.equal(trace.filter((s) => s.name.startsWith("dispatch ")).length, 2, "one dispatch per job, no second offer");
    assert.equal(dispatch.parentSpanId, coordinatorSubmit.spanId, "dispatch is part of the run's trace");
    assert.match(String(dispatch.attributes["otto.reserved"]), /^slot on /);
    const job = one("otto-agent", "job build");
    assert.equal(job.parentSpanId, dispatch.spanId);
    const step = one("otto-agent", "step compile");
    assert.equal(step.parentSpanId, job.spanId);
    assert.equal(step.attributes["otto.step.exit_code"], 0);
    assert.equal(step.attributes["otto.attempt"], 1);
    const archive = trace.find((s) => s.service === "otto-objects" && s.name === "archive log" && String(s.attributes["otto.object_key"]).endsWith("/build/attempt-1.log.zst"));
    assert.ok(archive, "log archival of build");
    const closeLog = parentOf(archive)!;
    assert.equal(closeLog.name, "otto.v1.LogStoreService/CloseLog");
    // The agent's call came through the gateway, which passed it on.
    const hops: string[] = [];
    let call = parentOf(closeLog);
    while (call && call.service !== "otto-agent") {
      hops.push(`${call.service} ${call.kind === 2 ? "server" : "client"}`);
      call = parentOf(call);
    }
    assert.deepEqual(hops, ["otto-gateway client", "otto-gateway server"], "the gateway passed the agent's call on");
    assert.equal(call?.name, "otto.v1.LogStoreService/CloseLog");
    assert.equal(parentOf(call!)?.spanId, job.spanId, "the agent's CloseLog call is within its job span");
  });

  it("records Postgres queries as child spans, never as root spans", () => {
    const queries = trace.filter((s) => s.attributes["db.system.name"] === "postgresql");
    assert.ok(queries.some((s) => s.service === "otto-coordinator"), "coordinator queries are in the run's trace");
    const roots = receiver.spans.filter((s) => s.attributes["db.system.name"] === "postgresql" && !s.parentSpanId);
    assert.deepEqual(roots.map((s) => s.name), []);
  });

  it("marks the failing step's span, and its job's, as errors", () => {
    const broken = trace.find((s) => s.name === "step broken")!;
    assert.equal(broken.statusCode, 2, "ERROR");
    assert.equal(broken.attributes["otto.step.exit_code"], 3);
    const passed = trace.find((s) => s.name === "step unit")!;
    assert.notEqual(passed.statusCode, 2);
    assert.equal(trace.find((s) => s.name === "job test")!.statusCode, 2);
    assert.notEqual(trace.find((s) => s.name === "job build")!.statusCode, 2);
  });

  it("puts trace and span ids on log lines written inside the run's work", async () => {
    const lines = (await readFile(otto.logFile, "utf8")).split("\n").filter((l) => l.includes(runId) && l.includes('"task finished"'));
    assert.equal(lines.length, 2);
    for (const line of lines) {
      const fields = JSON.parse(line.slice(line.indexOf("{")));
      assert.equal(fields.trace_id, traceId);
      assert.match(fields.span_id, /^[0-9a-f]{16}$/);
    }
  });
});

// What a caller instrumented with OpenTelemetry has: a context manager and a
// W3C propagator (the smallest ones that do the job, so the test needs no
// more packages).
class AsyncLocalContextManager implements ContextManager {
  readonly #store = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#store.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.#store.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

function useCallerTelemetry(): void {
  context.setGlobalContextManager(new AsyncLocalContextManager());
  propagation.setGlobalPropagator({
    inject(ctx, carrier, setter) {
      const span = otelTrace.getSpanContext(ctx);
      if (span) setter.set(carrier, "traceparent", `00-${span.traceId}-${span.spanId}-0${span.traceFlags}`);
    },
    extract: (ctx) => ctx,
    fields: () => ["traceparent"],
  });
}

describe("tracing over OTLP http/protobuf", () => {
  it("exports protobuf when OTEL_EXPORTER_OTLP_PROTOCOL says so", async () => {
    const receiver = await startOtlpReceiver();
    const otto = await startTestOtto({
      agents: 1,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf", OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
    try {
      const submitted = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml });
      assert.equal(submitted.status, 200, submitted.text);
      const exports = await waitFor("protobuf trace exports", () => {
        const found = receiver.requests.filter((r) => r.path === "/v1/traces" && r.contentType === "application/x-protobuf" && r.bytes > 0);
        return found.length > 0 && found;
      });
      assert.ok(exports.length > 0);
      assert.equal(receiver.requests.filter((r) => r.contentType.startsWith("application/json")).length, 0);

    } finally {
      await otto.stopAndClean();
      await receiver.close();
    }
  });
});
