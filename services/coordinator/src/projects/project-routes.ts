import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import type { ProjectService } from "@otto/gen/v1/project_service_pb";
import { inTransaction, type Pool } from "@otto/kit/db";
import { startProjectRun } from "../engine/start-project-run.ts";
import { loadRun } from "../run-store.ts";
import { branchNameProblem } from "./project-rules.ts";
import type { ScheduleStore } from "./schedules.ts";
import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { RunSourceSchema } from "@otto/gen/v1/run_pb";
import { projectToProto, type ProjectStore } from "./project-store.ts";

// ProjectService at the coordinator, which alone can seal webhook secrets;
// the gateway passes each call on.
export function projectRoutes(
  pool: Pool,
  boss: PgBoss,
  projects: ProjectStore,
  schedules: ScheduleStore,
  options: { maxActiveRuns: number; branchTip: (repoUrl: string, branch: string) => Promise<string> },
): ServiceImpl<typeof ProjectService> {
  return {
    async createProject(req) {
      const { project, webhookSecret } = await projects.create(req);
      return { project: projectToProto(project), webhookSecret };
    },
    async getProject(req) {
      return { project: projectToProto(await projects.get(req.name)) };
    },
    async listProjects() {
      return { projects: (await projects.list()).map(projectToProto) };
    },
    async updateProject(req) {
      return { project: projectToProto(await projects.update(req)) };
    },
    async deleteProject(req) {
      await schedules.deleteAllOf(req.name);
      await projects.delete(req.name);
      return {};
    },
    async rotateWebhookSecret(req) {
      return { webhookSecret: await projects.rotateWebhookSecret(req.name) };
    },
    async runProject(req) {
      const project = await projects.get(req.name);
      const branch = req.branch || project.defaultBranch;
      const problem = branchNameProblem(branch, "branch");
      if (problem) throw new ConnectError(problem, Code.InvalidArgument);
      const sha = req.sha || (await options.branchTip(project.repoUrl, branch));
      const started = await inTransaction(pool, (client) =>
        startProjectRun(client, boss, {
          project: project.name,
          source: { event: "manual", ref: `refs/heads/${branch}`, branch, sha },
          requestId: req.requestId ? `request ${req.requestId}` : "",
          maxActiveRuns: options.maxActiveRuns,
        }),
      );
      return { run: await loadRun(pool, started.runId) };
    },
    async approveFork(req) {
      const project = await projects.get(req.name);
      const runId = await inTransaction(pool, async (client) => {
        // The pull request's latest run of that commit says what it is.
        const { rows } = await client.query(
          `SELECT source FROM coordinator.runs WHERE project = $1 AND source->>'event' = 'pull_request'
             AND (source->'pullRequest'->>'number')::bigint = $2 AND source->>'sha' = $3
           ORDER BY created_at DESC LIMIT 1`,
          [project.name, req.pullRequest, req.sha],
        );
        if (!rows[0]) throw new ConnectError(`no run of pull request ${req.pullRequest} of ${project.name} built commit ${req.sha}`, Code.NotFound);
        const source = fromJson(RunSourceSchema, rows[0].source as JsonValue);
        await client.query("INSERT INTO coordinator.fork_approvals (project, pull_request, sha) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", [
          project.name,
          req.pullRequest,
          req.sha,
        ]);
        const started = await startProjectRun(client, boss, {
          project: project.name,
          source: { event: source.event, ref: source.ref, branch: source.branch, tag: source.tag, sha: source.sha, pullRequest: source.pullRequest },
          requestId: `approved ${req.pullRequest} ${req.sha}`,
          maxActiveRuns: options.maxActiveRuns,
        });
        return started.runId;
      });
      return { run: await loadRun(pool, runId) };
    },
    async createSchedule(req) {
      return { schedule: await schedules.create(req.project, req.cron, req.branch) };
    },
    async listSchedules(req) {
      return { schedules: await schedules.list(req.project) };
    },
    async deleteSchedule(req) {
      await schedules.delete(req.id);
      return {};
    },
  };
}
