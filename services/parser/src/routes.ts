import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { ParserService, PipelineProblemSchema } from "../../../gen/otto/v1/parser_service_pb.ts";
import { formatProblems, parsePipeline } from "./parse-pipeline.ts";

// Sizes are bounded by the request's protovalidate rules (256 KiB).
export function parserRoutes(router: ConnectRouter) {
  router.service(ParserService, {
    parsePipeline(req) {
      const fileName = req.fileName || "pipeline.yml";
      const result = parsePipeline(req.yaml);
      if (result.ok) return { pipeline: result.pipeline };
      const details = result.problems.map((p) => ({ desc: PipelineProblemSchema, value: create(PipelineProblemSchema, p) }));
      throw new ConnectError(formatProblems(result.problems, fileName), Code.InvalidArgument, undefined, details);
    },
  });
}
