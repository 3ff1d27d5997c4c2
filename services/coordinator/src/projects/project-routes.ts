import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import type { ProjectService } from "@otto/gen/v1/project_service_pb";
import { inTransaction, type Pool } from "@otto/kit/db";
import { startProjectRun } from "../engine/start-project-run.ts";
import { loadRun } from "../run-store.ts";
import { branchNameProblem } from "./project-rules.ts";
import { projectToProto, type ProjectStore } from "./project-store.ts";

// ProjectService at the coordinator, which alone can seal webhook secrets;
// the gateway passes each call on.
export function projectRoutes(
  pool: Pool,
  boss: PgBoss,
  projects: ProjectStore,
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
  };
}
