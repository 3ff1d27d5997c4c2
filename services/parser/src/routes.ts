import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { ParserService, PipelineProblemSchema } from "../../../gen/otto/v1/parser_service_pb.ts";
import { formatProblems, parsePipeline } from "./parse-pipeline.ts";

export const maxPipelineBytes = 256 * 1024;

export function parserRoutes(router: ConnectRouter) {
  router.service(ParserService, {
    parsePipeline(req) {
      const fileName = req.fileName || "pipeline.yml";
      if (Buffer.byteLength(req.yaml) > maxPipelineBytes) {
        throw new ConnectError(`${fileName} is larger than ${maxPipelineBytes / 1024} KiB`, Code.ResourceExhausted);
      }
      const result = parsePipeline(req.yaml);
      if (result.ok) return { pipeline: result.pipeline };
      const details = result.problems.map((p) => ({ desc: PipelineProblemSchema, value: create(PipelineProblemSchema, p) }));
      throw new ConnectError(formatProblems(result.problems, fileName), Code.InvalidArgument, undefined, details);
    },
  });
}
