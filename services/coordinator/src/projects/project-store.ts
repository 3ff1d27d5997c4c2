import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { ProjectSchema, type CreateProjectRequest, type Forge, type Project, type UpdateProjectRequest } from "@otto/gen/v1/project_service_pb";
import type { Pool, PoolClient } from "@otto/kit/db";
import type { SecretStore } from "../secret-store.ts";
import { repositoryOf } from "../forges/repository-of.ts";
import { branchNameProblem, defaultApiUrls, defaultBranch, defaultPipelinePath, globProblem, pipelinePathProblem, repoUrlProblem } from "./project-rules.ts";

type Queryable = Pool | PoolClient;

export interface ProjectForge {
  kind: string;
  apiUrl: string;
  tokenSecret: string;
  // As configured; repositoryOfProject gives the one in force.
  repository: string;
}

export interface ProjectRow {
  name: string;
  repoUrl: string;
  pipelinePath: string;
  defaultBranch: string;
  forge: ProjectForge;
  branches: string[];
  tags: string[];
  webhookSecretSealed: Buffer;
  lastRunNumber: bigint;
  createdAt: Date;
}

const columns = `name, repo_url, pipeline_path, default_branch, forge_kind, forge_api_url, forge_token_secret, forge_repository,
  branches, tags, webhook_secret, last_run_number, created_at`;

// The webhook secret is sealed under a label of the project's own, so a
// sealed value cannot be moved to another project.
const webhookLabel = (name: string) => `project ${name} webhook secret`;

export function projectFromRow(row: Record<string, any>): ProjectRow {
  return {
    name: row.name,
    repoUrl: row.repo_url,
    pipelinePath: row.pipeline_path,
    defaultBranch: row.default_branch,
    forge: { kind: row.forge_kind, apiUrl: row.forge_api_url, tokenSecret: row.forge_token_secret, repository: row.forge_repository },
    branches: row.branches,
    tags: row.tags,
    webhookSecretSealed: row.webhook_secret,
    lastRunNumber: BigInt(row.last_run_number),
    createdAt: row.created_at,
  };
}

// The repository on the forge that the project's webhooks and statuses are about.
export function repositoryOfProject(project: Pick<ProjectRow, "repoUrl" | "forge">): string {
  return project.forge.repository || repositoryOf(project.repoUrl);
}

export function projectToProto(project: ProjectRow): Project {
  return create(ProjectSchema, {
    name: project.name,
    repoUrl: project.repoUrl,
    pipelinePath: project.pipelinePath,
    defaultBranch: project.defaultBranch,
    forge: project.forge.kind
      ? { kind: project.forge.kind, apiUrl: project.forge.apiUrl, tokenSecret: project.forge.tokenSecret, repository: repositoryOfProject(project) }
      : undefined,
    branches: project.branches,
    tags: project.tags,
    createdAt: timestampFromDate(project.createdAt),
    webhookPath: `/hooks/${project.forge.kind || "{github|gitlab|gitea}"}/${project.name}`,
    lastRunNumber: project.lastRunNumber,
  });
}

export class ProjectStore {
  readonly #pool: Pool;
  readonly #secrets: SecretStore;

  constructor(pool: Pool, secrets: SecretStore) {
    this.#pool = pool;
    this.#secrets = secrets;
  }

  async create(req: CreateProjectRequest): Promise<{ project: ProjectRow; webhookSecret: string }> {
    const settings = {
      repoUrl: req.repoUrl,
      pipelinePath: req.pipelinePath || defaultPipelinePath,
      defaultBranch: req.defaultBranch || defaultBranch,
      forge: forgeSettings(req.forge),
      branches: req.branches,
      tags: req.tags,
    };
    requireValid(settings);
    const webhookSecret = newWebhookSecret();
    const { rows } = await this.#pool.query(
      `INSERT INTO coordinator.projects (name, repo_url, pipeline_path, default_branch, forge_kind, forge_api_url, forge_token_secret,
         forge_repository, branches, tags, webhook_secret)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (name) DO NOTHING RETURNING ${columns}`,
      [req.name, ...settingsValues(settings), this.#secrets.seal(webhookLabel(req.name), webhookSecret)],
    );
    if (rows.length === 0) throw new ConnectError(`a project named ${req.name} exists already`, Code.AlreadyExists);
    return { project: projectFromRow(rows[0]), webhookSecret };
  }

  async get(name: string, db: Queryable = this.#pool): Promise<ProjectRow> {
    const project = await this.find(name, db);
    if (!project) throw new ConnectError(`no project is named ${name}`, Code.NotFound);
    return project;
  }

  async find(name: string, db: Queryable = this.#pool): Promise<ProjectRow | undefined> {
    const { rows } = await db.query(`SELECT ${columns} FROM coordinator.projects WHERE name = $1`, [name]);
    return rows[0] ? projectFromRow(rows[0]) : undefined;
  }

  async list(): Promise<ProjectRow[]> {
    const { rows } = await this.#pool.query(`SELECT ${columns} FROM coordinator.projects ORDER BY name`);
    return rows.map(projectFromRow);
  }

  async update(req: UpdateProjectRequest): Promise<ProjectRow> {
    const current = await this.get(req.name);
    const settings = {
      repoUrl: req.repoUrl ?? current.repoUrl,
      pipelinePath: req.pipelinePath ?? current.pipelinePath,
      defaultBranch: req.defaultBranch ?? current.defaultBranch,
      forge: req.forge ? forgeSettings(req.forge) : current.forge,
      branches: req.branches ? req.branches.globs : current.branches,
      tags: req.tags ? req.tags.globs : current.tags,
    };
    requireValid(settings);
    const { rows } = await this.#pool.query(
      `UPDATE coordinator.projects SET repo_url = $2, pipeline_path = $3, default_branch = $4, forge_kind = $5, forge_api_url = $6,
         forge_token_secret = $7, forge_repository = $8, branches = $9, tags = $10
       WHERE name = $1 RETURNING ${columns}`,
      [req.name, ...settingsValues(settings)],
    );
    if (rows.length === 0) throw new ConnectError(`no project is named ${req.name}`, Code.NotFound);
    return projectFromRow(rows[0]);
  }

  async delete(name: string): Promise<void> {
    const { rowCount } = await this.#pool.query("DELETE FROM coordinator.projects WHERE name = $1", [name]);
    if (!rowCount) throw new ConnectError(`no project is named ${name}`, Code.NotFound);
  }

  async rotateWebhookSecret(name: string): Promise<string> {
    const webhookSecret = newWebhookSecret();
    const { rowCount } = await this.#pool.query("UPDATE coordinator.projects SET webhook_secret = $2 WHERE name = $1", [
      name,
      this.#secrets.seal(webhookLabel(name), webhookSecret),
    ]);
    if (!rowCount) throw new ConnectError(`no project is named ${name}`, Code.NotFound);
    return webhookSecret;
  }

  webhookSecretOf(project: ProjectRow): string {
    return this.#secrets.open(webhookLabel(project.name), project.webhookSecretSealed);
  }
}

function newWebhookSecret(): string {
  return randomBytes(32).toString("hex");
}

function forgeSettings(forge: Forge | undefined): ProjectForge {
  if (!forge) return { kind: "", apiUrl: "", tokenSecret: "", repository: "" };
  return {
    kind: forge.kind,
    apiUrl: (forge.apiUrl || defaultApiUrls[forge.kind] || "").replace(/\/+$/, ""),
    tokenSecret: forge.tokenSecret,
    repository: forge.repository.replace(/^\/+|\/+$/g, ""),
  };
}

type ProjectSettings = Pick<ProjectRow, "repoUrl" | "pipelinePath" | "defaultBranch" | "forge" | "branches" | "tags">;

// The settings as the parameters $2-$10 of the statements above.
function settingsValues(settings: ProjectSettings): unknown[] {
  const { forge } = settings;
  return [settings.repoUrl, settings.pipelinePath, settings.defaultBranch, forge.kind, forge.apiUrl, forge.tokenSecret, forge.repository, settings.branches, settings.tags];
}

function requireValid(settings: ProjectSettings) {
  const problems = [
    repoUrlProblem(settings.repoUrl),
    pipelinePathProblem(settings.pipelinePath),
    branchNameProblem(settings.defaultBranch),
    settings.forge.kind && !settings.forge.apiUrl ? `forge.api_url is required for ${settings.forge.kind} (the forge's API root, e.g. https://gitea.example.com/api/v1)` : undefined,
    settings.forge.repository && !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)+$/.test(settings.forge.repository)
      ? `forge.repository must be "owner/repo" (or a GitLab path with its groups), got "${settings.forge.repository}"`
      : undefined,
    ...settings.branches.map((glob) => globProblem(glob, "branches")),
    ...settings.tags.map((glob) => globProblem(glob, "tags")),
  ].filter((problem): problem is string => problem !== undefined);
  if (problems.length > 0) throw new ConnectError(problems.join("; "), Code.InvalidArgument);
}
