import { randomUUID } from "node:crypto";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { callerOf } from "@otto/kit/caller";
import { decidedByHeader, describeDecider } from "@otto/kit/decided-by";
import { ParserService } from "@otto/gen/v1/parser_service_pb";
import { RunService } from "@otto/gen/v1/run_service_pb";
import { forwardCalls } from "@otto/kit/forward-calls";
import type { RegistryClient } from "@otto/kit/registry-client";
import { followJournal } from "./follow-journal.ts";
import { followEveryJournal } from "./follow-every-journal.ts";
import { ParseCache } from "./parse-cache.ts";
import { addJobsHandler } from "./add-jobs.ts";

// The public RunService: YAML goes through the parser (unless its text was
// parsed before: see parse-cache.ts), everything else to any live
// coordinator (they share all state through Postgres). `insecure`: Otto
// runs without TLS, and nothing is authenticated.
export function runServiceImpl(registry: RegistryClient, parses = new ParseCache({ maxEntries: 0 }), insecure = false): ServiceImpl<typeof RunService> {
  const coordinator = forwardCalls(registry, "coordinator", RunService);
  return {
    async submitRun(req, ctx) {
      let pipeline;
      if (req.source.case === "pipelineYaml") {
        const fileName = req.fileName.slice(0, 200) || "pipeline.yml";
        pipeline = await parses.parse(req.source.value, async (yaml) => {
          const parsed = await registry.call("parser", ParserService, (c) => c.parsePipeline({ yaml, fileName }, { signal: ctx.signal }));
          if (!parsed.pipeline) throw new ConnectError("the parser answered without a pipeline", Code.Internal);
          return parsed.pipeline;
        });
      } else if (req.source.case === "pipeline") {
        pipeline = req.source.value;
      } else {
        throw new ConnectError('send either "pipelineYaml" (the pipeline file text) or "pipeline" (the IR)', Code.InvalidArgument);
      }
      // With a request id, trying another coordinator after a broken
      // connection cannot store the run twice.
      const forwarded = { source: { case: "pipeline" as const, value: pipeline }, requestId: req.requestId || randomUUID() };
      return coordinator("submitRun", forwarded, (c) => c.submitRun(forwarded, { signal: ctx.signal }));
    },
    getRun: (req, ctx) => coordinator("getRun", req, (c) => c.getRun(req, { signal: ctx.signal })),
    listRuns: (req, ctx) => coordinator("listRuns", req, (c) => c.listRuns(req, { signal: ctx.signal })),
    listPipelines: (req, ctx) => coordinator("listPipelines", req, (c) => c.listPipelines(req, { signal: ctx.signal })),
    cancelRun: (req, ctx) => coordinator("cancelRun", req, (c) => c.cancelRun(req, { signal: ctx.signal })),
    // The coordinator journals which token decided; a decision sent twice
    // is refused the second time (the job no longer waits): passed on once.
    approveJob: (req, ctx) =>
      coordinator("approveJob", req, (c) => c.approveJob(req, { signal: ctx.signal, headers: { [decidedByHeader]: describeDecider(callerOf(ctx)) } })),
    rejectJob: (req, ctx) =>
      coordinator("rejectJob", req, (c) => c.rejectJob(req, { signal: ctx.signal, headers: { [decidedByHeader]: describeDecider(callerOf(ctx)) } })),
    addJobs: addJobsHandler(registry, insecure),
    // Passed on once: a second try could make a second run.
    rerunRun: (req, ctx) => coordinator("rerunRun", req, (c) => c.rerunRun(req, { signal: ctx.signal })),
    async *watchRun(req, ctx) {
      yield* followJournal(registry, req.runId, req.afterSeq, ctx.signal, req.withWaits);
    },
    async *watchRuns(req, ctx) {
      yield* followEveryJournal(registry, req, ctx.signal);
    },
  };
}
