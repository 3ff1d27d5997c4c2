import { randomUUID } from "node:crypto";
import { create, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import { RunSourceSchema } from "@otto/gen/v1/run_pb";
import type { PoolClient } from "@otto/kit/db";
import { traceParentOf } from "@otto/kit/telemetry";
import { applyChanges } from "./apply-changes.ts";
import { enqueuePrepare } from "./project-run-queue.ts";
import { shardOf } from "../shards.ts";
import { RunState } from "./states.ts";
import { transitions } from "./transitions.ts";

// What started the run and the commit it builds (the project fills in its
// name, the run's number and the repository).
export type ProjectRunSource = Omit<MessageInitShape<typeof RunSourceSchema>, "$typeName" | "project" | "number" | "repoUrl"> & { event: string; sha: string };

export interface StartedProjectRun {
  runId: string;
  number: bigint;
  // False when the request was made before: the run it made then.
  created: boolean;
}

// Makes a project's run of one commit: QUEUED, numbered in the project, with
// no jobs yet. Its pipeline file is read at that commit by the prepare
// queue's work, enqueued in this same transaction (attach-pipeline.ts,
// fail-unprepared-run.ts). A request id the project saw before (a forge's
// delivery sent again, a schedule's tick) answers the run it made and makes
// nothing.
export async function startProjectRun(
  client: PoolClient,
  boss: PgBoss,
  request: { project: string; source: ProjectRunSource; requestId: string; maxActiveRuns: number },
): Promise<StartedProjectRun> {
  const { project, source, requestId } = request;
  if (requestId) {
    // Two deliveries of one id at once: the second waits for the first's run.
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))", [project, requestId]);
    const { rows } = await client.query("SELECT id, source->>'number' AS number FROM coordinator.runs WHERE project = $1 AND project_request = $2", [
      project,
      requestId,
    ]);
    if (rows[0]) return { runId: rows[0].id, number: BigInt(rows[0].number ?? 0), created: false };
  }
  await requireRoomForRun(client, request.maxActiveRuns);
  const { number, repoUrl, pipelinePath } = await numberNextRun(client, project);
  const runId = randomUUID();
  const stored = create(RunSourceSchema, { ...source, project, number, repoUrl });
  await client.query(
    `INSERT INTO coordinator.runs (id, name, state, pipeline, shard, project_request, traceparent, project, source)
     VALUES ($1, $2, $3, '{}', $4, $5, $6, $7, $8)`,
    [runId, project, transitions.run.initial, shardOf(runId), requestId || null, traceParentOf(), project, toJson(RunSourceSchema, stored)],
  );
  await applyChanges(client, runId, [
    { entity: "note", state: RunState.QUEUED, message: `run ${number} of project ${project} (${describeSource(source)}); reading ${pipelinePath} at ${source.sha.slice(0, 12)}` },
  ]);
  await enqueuePrepare(boss, client, runId);
  return { runId, number, created: true };
}

// A new run only while fewer than OTTO_MAX_ACTIVE_RUNS are unfinished
// (SubmitRun checks the same inside its one statement).
export async function requireRoomForRun(client: PoolClient, maxActiveRuns: number): Promise<void> {
  const { rows } = await client.query("SELECT count(*)::int AS n FROM coordinator.runs WHERE finished_at IS NULL");
  if (rows[0].n >= maxActiveRuns) {
    throw new ConnectError(
      `${rows[0].n} runs are in progress, the most Otto accepts at once (OTTO_MAX_ACTIVE_RUNS); try again when some have finished`,
      Code.ResourceExhausted,
    );
  }
}

// The project's next run number, and what its run reads.
export async function numberNextRun(client: PoolClient, project: string): Promise<{ number: bigint; repoUrl: string; pipelinePath: string }> {
  const { rows } = await client.query(
    "UPDATE coordinator.projects SET last_run_number = last_run_number + 1 WHERE name = $1 RETURNING last_run_number, repo_url, pipeline_path",
    [project],
  );
  if (!rows[0]) throw new ConnectError(`no project is named ${project}`, Code.NotFound);
  return { number: BigInt(rows[0].last_run_number), repoUrl: rows[0].repo_url, pipelinePath: rows[0].pipeline_path };
}

function describeSource(source: ProjectRunSource): string {
  switch (source.event) {
    case "pull_request":
      return `pull request ${source.pullRequest?.number ?? "?"} from ${source.branch}`;
    case "tag":
      return `tag ${source.tag}`;
    case "push":
      return `push to ${source.branch}`;
    default:
      return source.branch ? `${source.event} of ${source.branch}` : source.event;
  }
}
