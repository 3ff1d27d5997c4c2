import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import type { ForgeHookService } from "@otto/gen/v1/forge_hook_service_pb";
import { inTransaction, type Pool, type PoolClient } from "@otto/kit/db";
import { startProjectRun } from "../engine/start-project-run.ts";
import type { ForgeKind } from "../forges/forge-kind.ts";
import { hookIsSigned } from "../forges/hook-signature.ts";
import { readHook, type ForgeEvent } from "../forges/read-hook.ts";
import { sameRepository } from "../forges/repository-of.ts";
import { repositoryOfProject, type ProjectStore } from "./project-store.ts";
import { whyEventDoesNotRun } from "./run-triggers.ts";

// A forge's webhook, as the gateway received it: checked against the
// project's secret over its raw bytes before anything reads it, then read,
// matched to the project's repository, and either ignored (saying why) or
// made a run of the commit (whose pipeline file is read afterwards, by the
// prepare queue's work: the forge hears back at once).
export function forgeHookRoutes(pool: Pool, boss: PgBoss, projects: ProjectStore, limits: { maxActiveRuns: number }): ServiceImpl<typeof ForgeHookService> {
  return {
    async receiveHook(req) {
      const forge = req.forge as ForgeKind;
      const project = await projects.find(req.project);
      if (!project) throw new ConnectError(`no project is named ${req.project}`, Code.NotFound);
      if (project.forge.kind && project.forge.kind !== forge) {
        throw new ConnectError(`project ${project.name} is on ${project.forge.kind}: its webhook is /hooks/${project.forge.kind}/${project.name}`, Code.NotFound);
      }
      if (!hookIsSigned(forge, req.headers, req.body, projects.webhookSecretOf(project))) {
        throw new ConnectError(
          forge === "gitlab" ? "the webhook's X-Gitlab-Token is missing or wrong" : "the webhook's signature is missing or wrong (X-Hub-Signature-256 over the raw body, with the project's webhook secret)",
          Code.Unauthenticated,
        );
      }
      const reading = readHook(forge, req.headers, req.body);
      if (reading.kind === "bad") throw new ConnectError(reading.why, Code.InvalidArgument);
      if (reading.kind === "ignored") return { ignored: reading.why };
      const event = reading.event;
      const repository = repositoryOfProject(project);
      if (!sameRepository(event.repository, repository)) {
        throw new ConnectError(`the event is about ${event.repository}, but project ${project.name} is ${repository}`, Code.PermissionDenied);
      }
      const why = whyEventDoesNotRun(project, event);
      if (why) return { ignored: why };
      const started = await inTransaction(pool, async (client) =>
        startProjectRun(client, boss, {
          project: project.name,
          source: sourceOf(event, event.pullRequest?.fromFork ? await forkApproved(client, project.name, event) : false),
          requestId: event.deliveryId ? `delivery ${event.deliveryId}` : "",
          maxActiveRuns: limits.maxActiveRuns,
        }),
      );
      return { runId: started.runId };
    },
  };
}

// An admin let this commit of the fork's pull request have secrets (ApproveFork).
async function forkApproved(client: PoolClient, project: string, event: ForgeEvent): Promise<boolean> {
  const { rowCount } = await client.query("SELECT 1 FROM coordinator.fork_approvals WHERE project = $1 AND pull_request = $2 AND sha = $3", [
    project,
    event.pullRequest?.number,
    event.sha,
  ]);
  return (rowCount ?? 0) > 0;
}

function sourceOf(event: ForgeEvent, approved: boolean) {
  const pr = event.pullRequest;
  return {
    event: event.event,
    ref: event.ref,
    branch: event.branch,
    tag: event.tag,
    sha: event.sha,
    pullRequest: pr
      ? { number: BigInt(pr.number), headRef: pr.headRef, baseRef: pr.baseRef, headRepository: pr.headRepository, baseRepository: pr.baseRepository }
      : undefined,
    secretsWithheld:
      pr?.fromFork && !approved
        ? `pull request ${pr.number} comes from the fork ${pr.headRepository}: its jobs get no secrets and no forge token until an admin approves this commit (ApproveFork)`
        : "",
  };
}
