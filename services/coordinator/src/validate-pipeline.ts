import { Code, ConnectError } from "@connectrpc/connect";
import type { Pipeline } from "@otto/gen/v1/pipeline_pb";
import { formatPipelineProblems, pipelineProblems } from "@otto/contracts/pipeline-rules";

// A pipeline IR, whichever way it was made (the YAML parser, the SDK's
// builder, a curl), must keep the pipeline rules; every problem is reported at once.
export function assertValidPipeline(pipeline: Pipeline | undefined): asserts pipeline is Pipeline {
  if (!pipeline) throw new ConnectError("pipeline is required", Code.InvalidArgument);
  const problems = pipelineProblems(pipeline);
  if (problems.length > 0) {
    throw new ConnectError(`invalid pipeline:\n${formatPipelineProblems(problems)}`, Code.InvalidArgument);
  }
}
