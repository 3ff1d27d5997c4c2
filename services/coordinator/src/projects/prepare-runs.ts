import { context } from "@opentelemetry/api";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import { ParserService } from "@otto/gen/v1/parser_service_pb";
import { RunSourceSchema, type RunSource } from "@otto/gen/v1/run_pb";
import type { Pool, PoolClient } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import type { Notifier } from "@otto/kit/notifier";
import type { ServiceCaller } from "@otto/kit/service-caller";
import { contextFromTraceParent } from "@otto/kit/telemetry";
import { attachPipeline } from "../engine/attach-pipeline.ts";
import { failUnpreparedRun } from "../engine/fail-unprepared-run.ts";
import { prepareChannel, prepareQueue, type PreparePayload } from "../engine/project-run-queue.ts";
import { RunState } from "../engine/states.ts";
import { basicAuthHeader, forgeCredential, type ForgeCredential } from "../git/forge-credential.ts";
import { readFileAtCommit, type FileAtCommit } from "../git/read-file-at-commit.ts";
import { startQueueWorker } from "../queue-worker.ts";
import type { SecretStore } from "../secret-store.ts";
import { jobsAtCommit } from "./commit-jobs.ts";

const uuidPattern = /^[0-9a-f-]{36}$/i;

// The work of the prepare queue: a project's run gets the pipeline file of
// its commit, read from the project's repository and parsed, as its jobs;
// or fails, saying why (a missing or invalid file). A repository (or parser)
// that cannot be reached is tried again after pg-boss's back-off, and the
// run fails after the last try.
export function startPrepareWorker(options: {
  pool: Pool;
  boss: PgBoss;
  notifier: Notifier;
  log: Logger;
  peers: ServiceCaller;
  secrets: SecretStore;
  gitCacheDir: string;
}) {
  const { peers, secrets, gitCacheDir, log } = options;
  return startQueueWorker<PreparePayload>({
    ...options,
    queue: prepareQueue,
    channel: prepareChannel,
    concurrency: 2,
    handle: async (job, client) => {
      const runId = job.data?.runId;
      if (typeof runId !== "string" || !uuidPattern.test(runId)) {
        log.warn("dropping malformed prepare job", { job_id: job.id });
        return;
      }
      const traceparent = typeof job.data.traceparent === "string" ? job.data.traceparent : "";
      await context.with(contextFromTraceParent(traceparent), () => prepare(client, runId, { peers, secrets, gitCacheDir }));
    },
    // The repository stayed out of reach (or the parser did) through every try.
    giveUp: async (job, client, err) => {
      const runId = job.data?.runId;
      if (typeof runId === "string" && uuidPattern.test(runId)) await failUnpreparedRun(client, runId, `could not read the run's pipeline: ${(err as Error).message}`);
    },
  });
}

async function prepare(
  client: PoolClient,
  runId: string,
  options: { peers: ServiceCaller; secrets: SecretStore; gitCacheDir: string },
): Promise<void> {
  const { rows } = await client.query(
    `SELECT r.state, r.source, r.project, p.pipeline_path, p.forge_kind, p.forge_token_secret FROM coordinator.runs r
     LEFT JOIN coordinator.projects p ON p.name = r.project WHERE r.id = $1`,
    [runId],
  );
  const run = rows[0];
  if (!run || run.state !== RunState.QUEUED || !run.source) return;
  const source = fromJson(RunSourceSchema, run.source as JsonValue);
  const fail = (message: string) => failUnpreparedRun(client, runId, message);
  if (run.pipeline_path === null) return void (await fail(`project ${run.project} was deleted before its pipeline file was read`));
  const path: string = run.pipeline_path;
  const at = `${path} at ${source.sha.slice(0, 12)}`;
  const { read, credential } = await readPipelineFile(source, path, { forgeKind: run.forge_kind ?? "", tokenSecret: run.forge_token_secret ?? "" }, options);
  if (!read.found) return void (await fail(`no pipeline to run: ${read.why}`));
  const text = read.text;
  let pipeline;
  try {
    ({ pipeline } = await options.peers.call("parser", ParserService, (c) => c.parsePipeline({ yaml: text, fileName: path }), { idempotent: true, retryForMs: 10_000 }));
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.InvalidArgument) return void (await fail(`${at} is not a valid pipeline:\n${err.rawMessage}`));
    throw err;
  }
  if (!pipeline) throw new Error("the parser answered without a pipeline");
  jobsAtCommit(pipeline, source, credential);
  try {
    await options.secrets.requireExisting(pipeline.jobs.flatMap((job) => job.secrets));
  } catch (err) {
    if (err instanceof ConnectError && err.code === Code.FailedPrecondition) return void (await fail(err.rawMessage));
    throw err;
  }
  const withheld = source.secretsWithheld ? `; secrets withheld: ${source.secretsWithheld}` : "";
  await attachPipeline(client, runId, pipeline, `pipeline "${pipeline.name}" read from ${at}: ${pipeline.jobs.length} jobs${withheld}`);
}

// The pipeline file at the run's commit. A repository that refuses to be
// read without credentials (a private one, over HTTPS) is read with the
// project's forge token, which its checkouts then get too; a public one is
// read, and checked out, without it, so its jobs never hold the token.
async function readPipelineFile(
  source: RunSource,
  path: string,
  forge: { forgeKind: string; tokenSecret: string },
  options: { secrets: SecretStore; gitCacheDir: string },
): Promise<{ read: FileAtCommit; credential?: ForgeCredential }> {
  const at = { repoUrl: source.repoUrl, sha: source.sha, path, cacheDir: options.gitCacheDir };
  const read = await readFileAtCommit(at);
  const credential = !read.found && read.refused ? forgeCredential(forge.forgeKind, forge.tokenSecret, source.repoUrl) : undefined;
  const token = credential && (await options.secrets.reveal([credential.secret])).values[credential.secret];
  if (!credential || !token) return { read };
  return { read: await readFileAtCommit({ ...at, authHeader: basicAuthHeader(credential.user, token) }), credential };
}
