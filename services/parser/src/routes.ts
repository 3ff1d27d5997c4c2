import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { ParserService, PipelineProblemSchema } from "@otto/gen/v1/parser_service_pb";
import { formatProblems, parsePipeline } from "./parse-pipeline.ts";

// The text is bounded by the request's protovalidate rules (256 KiB), what it
// expands to by parsePipeline (resource_exhausted past its limits).
export function parserRoutes(router: ConnectRouter) {
  router.service(ParserService, {
    parsePipeline(req) {
      const fileName = req.fileName || "pipeline.yml";
      const result = parsePipeline(req.yaml, req.fragment ? { fragment: { runJobs: req.runJobs } } : {});
      if (result.ok) return { pipeline: result.pipeline };
      const details = result.problems.map((p) => ({ desc: PipelineProblemSchema, value: create(PipelineProblemSchema, p) }));
      const code = result.tooLarge ? Code.ResourceExhausted : Code.InvalidArgument;
      throw new ConnectError(formatProblems(result.problems, fileName), code, undefined, details);
    },
  });
}
