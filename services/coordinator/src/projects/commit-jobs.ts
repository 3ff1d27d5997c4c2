import { create } from "@bufbuild/protobuf";
import { PipelineStepSchema, type Pipeline } from "@otto/gen/v1/pipeline_pb";
import type { RunSource } from "@otto/gen/v1/run_pb";
import type { ForgeCredential } from "../git/forge-credential.ts";

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
  // A private repository's token (one of the job's secrets) reaches git
  // through a credential helper in git's environment (after any config the
  // job's own environment gives git that way): in no URL, argument or file.
  'if [ -n "${OTTO_REPO_TOKEN_SECRET:-}" ]; then',
  "  i=${GIT_CONFIG_COUNT:-0}",
  "  case $i in ''|*[!0-9]*) i=0 ;; esac",
  '  export "GIT_CONFIG_KEY_$i=credential.helper"',
  String.raw`  export "GIT_CONFIG_VALUE_$i="'!f() { test "$1" = get || exit 0; echo "username=$OTTO_REPO_TOKEN_USER"; echo "password=$(printenv "$OTTO_REPO_TOKEN_SECRET")"; }; f'`,
  "  export GIT_CONFIG_COUNT=$((i + 1))",
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

// `credential`: the forge token that checks out a private repository over
// HTTPS; a job that checks out gets it as one of its secrets (so its steps
// may read it, as GitHub's GITHUB_TOKEN), unless secrets are withheld.
export function jobsAtCommit(pipeline: Pipeline, source: RunSource, credential?: ForgeCredential): Pipeline {
  const env = commitEnv(source);
  for (const job of pipeline.jobs) {
    job.env = { ...job.env, ...env };
    // Set by Otto alone (credentialGiven reads them back).
    delete job.env.OTTO_REPO_TOKEN_SECRET;
    delete job.env.OTTO_REPO_TOKEN_USER;
    if (source.secretsWithheld) job.secrets = [];
    if (job.checkout === false) continue;
    job.steps.unshift(create(PipelineStepSchema, { name: checkoutStepName, run: checkoutScript }));
    if (credential && !source.secretsWithheld) {
      if (!job.secrets.includes(credential.secret)) job.secrets.push(credential.secret);
      job.env.OTTO_REPO_TOKEN_SECRET = credential.secret;
      job.env.OTTO_REPO_TOKEN_USER = credential.user;
    }
  }
  return pipeline;
}

// The credential a run's checkouts were given (jobsAtCommit), for the jobs
// its steps add.
export function credentialGiven(pipeline: Pipeline): ForgeCredential | undefined {
  const job = pipeline.jobs.find((j) => j.env.OTTO_REPO_TOKEN_SECRET);
  return job ? { secret: job.env.OTTO_REPO_TOKEN_SECRET, user: job.env.OTTO_REPO_TOKEN_USER ?? "" } : undefined;
}
