import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Pipeline } from "@otto/gen/v1/pipeline_pb";
import { ParserService } from "@otto/gen/v1/parser_service_pb";
import { RunService, type AddJobsRequest, type AddJobsResponse } from "@otto/gen/v1/run_service_pb";
import { addingStepHeader, encodeAddingStep } from "@otto/kit/adding-step";
import { callerOf } from "@otto/kit/caller";
import { forwardCalls } from "@otto/kit/forward-calls";
import type { RegistryClient } from "@otto/kit/registry-client";
import { unsignedStepClaims, type StepClaims } from "@otto/kit/step-token";

// RunService.AddJobs at the public endpoint. Only a step token is admitted
// (its access rule), and only for its own run; a YAML fragment goes through
// the parser with the run's job names, so that its problems, needs of the
// run's jobs included, come with their line and column. The coordinator
// then checks the jobs against the run as it is under its lock, and the
// attempt the token is for: it adds them only while that attempt runs.
export function addJobsHandler(registry: RegistryClient, insecure: boolean) {
  const coordinator = forwardCalls(registry, "coordinator", RunService);
  return async (req: AddJobsRequest, ctx: HandlerContext): Promise<AddJobsResponse> => {
    const step = addingStepOf(ctx, insecure);
    if (req.runId !== step.runId) {
      throw new ConnectError(`this step token adds jobs only to its own run ${step.runId}, not to run ${req.runId}`, Code.PermissionDenied);
    }
    const fileName = req.fileName.slice(0, 200) || "jobs.yml";
    let jobs: Pipeline;
    if (req.source.case === "jobsYaml") {
      const yaml = req.source.value;
      const read = { runId: req.runId };
      const { run } = await coordinator("getRun", read, (c) => c.getRun(read, { signal: ctx.signal }));
      const runJobs = run?.jobs.map((job) => job.name) ?? [];
      const parsed = await registry.call("parser", ParserService, (c) => c.parsePipeline({ yaml, fileName, fragment: true, runJobs }, { signal: ctx.signal }));
      if (!parsed.pipeline) throw new ConnectError("the parser answered without jobs", Code.Internal);
      jobs = parsed.pipeline;
    } else if (req.source.case === "jobs") {
      jobs = req.source.value;
    } else {
      throw new ConnectError('send either "jobsYaml" (a YAML document whose only key is `jobs`) or "jobs" (the IR)', Code.InvalidArgument);
    }
    // Safe to repeat: jobs the same job added before, as they are now, are left as they are.
    return coordinator("addJobs", req, (c) =>
      c.addJobs({ runId: req.runId, source: { case: "jobs", value: jobs }, fileName }, { signal: ctx.signal, headers: { [addingStepHeader]: encodeAddingStep(step) } }),
    );
  };
}

// The step the call comes from: its checked step token; without TLS, where
// nothing is authenticated, the claims its token states.
function addingStepOf(ctx: HandlerContext, insecure: boolean): StepClaims {
  const caller = callerOf(ctx);
  if (caller.kind === "step") return caller;
  const stated = insecure ? unsignedStepClaims(ctx.requestHeader.get("authorization")) : undefined;
  if (stated) return stated;
  throw new ConnectError("AddJobs takes the token a step finds in OTTO_TOKEN: only a run's own steps add jobs to it", Code.Unauthenticated);
}
