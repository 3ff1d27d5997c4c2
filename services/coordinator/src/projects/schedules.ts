import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { PgBoss } from "pg-boss";
import { ScheduleSchema, type Schedule } from "@otto/gen/v1/project_service_pb";
import type { Pool } from "@otto/kit/db";
import type { Logger } from "@otto/kit/log";
import type { Notifier } from "@otto/kit/notifier";
import { startProjectRun } from "../engine/start-project-run.ts";
import { startQueueWorker } from "../queue-worker.ts";
import { branchNameProblem } from "./project-rules.ts";

// Schedules of a project's runs: pg-boss's cron (shared by every
// coordinator through the pgboss schema, one job per tick whichever of them
// are alive) sends a job to this queue for each tick of each schedule; the
// job runs the branch's tip. The run is keyed by the job, so a job taken
// over after a coordinator's death makes no second run.
export const scheduleQueue = "project-schedule";
export const scheduleChannel = "otto_schedules";
export const scheduleQueueOptions = { retryLimit: 3, retryDelay: 10, retryBackoff: true, expireInSeconds: 300 } as const;

export class ScheduleStore {
  readonly #pool: Pool;
  readonly #boss: PgBoss;

  constructor(pool: Pool, boss: PgBoss) {
    this.#pool = pool;
    this.#boss = boss;
  }

  async create(project: string, cron: string, branch: string): Promise<Schedule> {
    if (branch) {
      const problem = branchNameProblem(branch, "branch");
      if (problem) throw new ConnectError(problem, Code.InvalidArgument);
    }
    const fields = cron.trim().split(/\s+/);
    if (fields.length !== 5) throw new ConnectError(`cron must have five fields (minute hour day-of-month month day-of-week), got "${cron}"`, Code.InvalidArgument);
    const id = randomUUID();
    const { rows } = await this.#pool.query(
      `INSERT INTO coordinator.schedules (id, project, cron, branch) SELECT $1, name, $3, $4 FROM coordinator.projects WHERE name = $2 RETURNING *`,
      [id, project, fields.join(" "), branch],
    );
    if (!rows[0]) throw new ConnectError(`no project is named ${project}`, Code.NotFound);
    try {
      await this.#boss.schedule(scheduleQueue, fields.join(" "), { scheduleId: id }, { tz: "UTC", key: id });
    } catch (err) {
      await this.#pool.query("DELETE FROM coordinator.schedules WHERE id = $1", [id]);
      throw new ConnectError(`cron "${cron}" is not a schedule: ${(err as Error).message}`, Code.InvalidArgument);
    }
    return toProto(rows[0]);
  }

  async list(project: string): Promise<Schedule[]> {
    const { rows } = await this.#pool.query("SELECT * FROM coordinator.schedules WHERE $1 = '' OR project = $1 ORDER BY project, created_at", [project]);
    return rows.map(toProto);
  }

  async delete(id: string): Promise<void> {
    const { rowCount } = await this.#pool.query("DELETE FROM coordinator.schedules WHERE id = $1", [id]);
    if (!rowCount) throw new ConnectError(`no schedule has the id ${id}`, Code.NotFound);
    await this.#boss.unschedule(scheduleQueue, id);
  }

  // A deleted project's schedules end with it.
  async deleteAllOf(project: string): Promise<void> {
    const { rows } = await this.#pool.query("DELETE FROM coordinator.schedules WHERE project = $1 RETURNING id", [project]);
    for (const row of rows) await this.#boss.unschedule(scheduleQueue, row.id);
  }
}

function toProto(row: Record<string, any>): Schedule {
  return create(ScheduleSchema, { id: row.id, project: row.project, cron: row.cron, branch: row.branch, createdAt: timestampFromDate(row.created_at) });
}

export function startScheduleWorker(options: {
  pool: Pool;
  boss: PgBoss;
  notifier: Notifier;
  log: Logger;
  maxActiveRuns: number;
  branchTip: (repoUrl: string, branch: string) => Promise<string>;
}) {
  const { boss, log } = options;
  return startQueueWorker<{ scheduleId?: unknown }>({
    ...options,
    queue: scheduleQueue,
    channel: scheduleChannel,
    handle: async (job, client) => {
      const scheduleId = job.data?.scheduleId;
      if (typeof scheduleId !== "string") return;
      const { rows } = await client.query(
        `SELECT s.project, s.branch, p.repo_url, p.default_branch FROM coordinator.schedules s JOIN coordinator.projects p ON p.name = s.project WHERE s.id = $1`,
        [scheduleId],
      );
      if (!rows[0]) {
        log.info("a tick of a deleted schedule: nothing to run", { schedule_id: scheduleId });
        return;
      }
      const branch: string = rows[0].branch || rows[0].default_branch;
      const sha = await options.branchTip(rows[0].repo_url, branch);
      await startProjectRun(client, boss, {
        project: rows[0].project,
        source: { event: "schedule", ref: `refs/heads/${branch}`, branch, sha },
        requestId: `schedule ${scheduleId} ${job.id}`,
        maxActiveRuns: options.maxActiveRuns,
      });
    },
  });
}
