import { create } from "@bufbuild/protobuf";
import { PipelineStepSchema, type Pipeline } from "@otto/gen/v1/pipeline_pb";
import type { RunSource } from "@otto/gen/v1/run_pb";

// What a project's run adds to the jobs of the pipeline read from its
// commit: the commit's facts in every step's environment, and a first step
// that checks the commit out into the workspace (unless the job says
// `checkout: false`); and, for a pull request from a fork that no admin
// approved, no secrets. The values reach git only as environment
// variables, never inside a script's text.
export const checkoutStepName = "checkout";

const checkoutScript = [
  "git init -q .",
  // A repository on this host (file://) may belong to another user, which
  // git refuses unless told that it is trusted: it is the project's own.
  'if [ "${OTTO_REPO_URL#file://}" != "$OTTO_REPO_URL" ]; then',
  '  printf \'[safe]\\n\\tdirectory = *\\n\' > "$PWD/.git/otto-local.config"',
  '  export GIT_CONFIG_GLOBAL="$PWD/.git/otto-local.config"',
  "fi",
  'git fetch -q --depth=1 --no-tags -- "$OTTO_REPO_URL" "$OTTO_SHA"',
  "git -c advice.detachedHead=false checkout -q FETCH_HEAD",
].join("\n");

export function commitEnv(source: RunSource): Record<string, string> {
  return {
    OTTO_PROJECT: source.project,
    OTTO_RUN_NUMBER: String(source.number),
    OTTO_EVENT: source.event,
    OTTO_REF: source.ref,
    OTTO_BRANCH: source.branch,
    OTTO_TAG: source.tag,
    OTTO_SHA: source.sha,
    OTTO_PULL_REQUEST: source.pullRequest ? String(source.pullRequest.number) : "",
    OTTO_REPO_URL: source.repoUrl,
  };
}

export function jobsAtCommit(pipeline: Pipeline, source: RunSource): Pipeline {
  const env = commitEnv(source);
  for (const job of pipeline.jobs) {
    job.env = { ...job.env, ...env };
    if (source.secretsWithheld) job.secrets = [];
    if (job.checkout !== false) job.steps.unshift(create(PipelineStepSchema, { name: checkoutStepName, run: checkoutScript }));
  }
  return pipeline;
}
