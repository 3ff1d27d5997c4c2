// States are stored as the numbers of the otto.v1.RunState enum.
export const migrations = [
  `CREATE TABLE runs (
     id uuid PRIMARY KEY,
     name text NOT NULL,
     state smallint NOT NULL,
     pipeline jsonb NOT NULL,
     cancel_requested boolean NOT NULL DEFAULT false,
     last_seq bigint NOT NULL DEFAULT 0,
     created_at timestamptz NOT NULL DEFAULT now(),
     started_at timestamptz,
     finished_at timestamptz
   );
   CREATE INDEX runs_newest ON runs (created_at DESC, id DESC);

   CREATE TABLE jobs (
     run_id uuid NOT NULL REFERENCES runs ON DELETE CASCADE,
     name text NOT NULL,
     position int NOT NULL,
     state smallint NOT NULL,
     needs text[] NOT NULL,
     runs_on text[] NOT NULL,
     message text NOT NULL DEFAULT '',
     agent_id text NOT NULL DEFAULT '',
     started_at timestamptz,
     finished_at timestamptz,
     PRIMARY KEY (run_id, name)
   );

   CREATE TABLE steps (
     run_id uuid NOT NULL,
     job text NOT NULL,
     position int NOT NULL,
     name text NOT NULL,
     state smallint NOT NULL,
     exit_code int,
     started_at timestamptz,
     finished_at timestamptz,
     PRIMARY KEY (run_id, job, position),
     FOREIGN KEY (run_id, job) REFERENCES jobs ON DELETE CASCADE
   );

   -- One task per job that became ready; an agent claims it (attempt + 1)
   -- and keeps its lease alive by heartbeats.
   CREATE TABLE tasks (
     id uuid PRIMARY KEY,
     run_id uuid NOT NULL,
     job text NOT NULL,
     labels text[] NOT NULL,
     status text NOT NULL CHECK (status IN ('pending', 'assigned', 'done')),
     attempt int NOT NULL DEFAULT 0,
     agent_id text NOT NULL DEFAULT '',
     cancel_requested boolean NOT NULL DEFAULT false,
     lease_expires_at timestamptz,
     created_at timestamptz NOT NULL DEFAULT now(),
     UNIQUE (run_id, job),
     FOREIGN KEY (run_id, job) REFERENCES jobs ON DELETE CASCADE
   );
   CREATE INDEX tasks_pending ON tasks (created_at) WHERE status = 'pending';
   CREATE INDEX tasks_assigned ON tasks (lease_expires_at) WHERE status = 'assigned';

   -- The run journal: every state change, gap-free per run.
   CREATE TABLE journal (
     run_id uuid NOT NULL REFERENCES runs ON DELETE CASCADE,
     seq bigint NOT NULL,
     at timestamptz NOT NULL DEFAULT clock_timestamp(),
     job text NOT NULL DEFAULT '',
     step text NOT NULL DEFAULT '',
     state smallint NOT NULL,
     exit_code int,
     message text NOT NULL DEFAULT '',
     PRIMARY KEY (run_id, seq)
   );`,
  // Shards: every run belongs to one; each shard is owned by one live
  // coordinator at a time, under a lease, with an epoch that fences writes.
  `ALTER TABLE runs ADD COLUMN shard int NOT NULL DEFAULT 0;
   CREATE INDEX runs_shard ON runs (shard) WHERE finished_at IS NULL;
   CREATE TABLE shards (
     shard int PRIMARY KEY,
     owner text,
     epoch bigint NOT NULL DEFAULT 0,
     lease_expires_at timestamptz
   );
   INSERT INTO shards (shard) SELECT generate_series(0, 15);
   CREATE TABLE members (
     id text PRIMARY KEY,
     heartbeat_at timestamptz NOT NULL
   );`,
  // Reserve before allocate: an agent slot (with the job's cpu and memory)
  // and every lock the job names are reserved together when an agent claims
  // the job's task, under the task's lease, and released when it ends.
  `ALTER TABLE tasks ADD COLUMN started boolean NOT NULL DEFAULT false;
   ALTER TABLE jobs ADD COLUMN locks text[] NOT NULL DEFAULT '{}',
     ADD COLUMN cpu float8 NOT NULL DEFAULT 0,
     ADD COLUMN memory_bytes bigint NOT NULL DEFAULT 0,
     ADD COLUMN retry_max int NOT NULL DEFAULT 0,
     ADD COLUMN retry_exit_codes int[] NOT NULL DEFAULT '{}',
     ADD COLUMN retry_agent_lost boolean;
   CREATE TABLE reservations (
     id bigserial PRIMARY KEY,
     run_id uuid NOT NULL,
     job text NOT NULL,
     task_id uuid NOT NULL,
     attempt int NOT NULL,
     kind text NOT NULL CHECK (kind IN ('slot', 'lock')),
     -- the agent for a slot, the lock's name for a lock
     name text NOT NULL,
     cpu float8 NOT NULL DEFAULT 0,
     memory_bytes bigint NOT NULL DEFAULT 0,
     lease_expires_at timestamptz NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE UNIQUE INDEX reservations_one_holder_per_lock ON reservations (name) WHERE kind = 'lock';
   CREATE INDEX reservations_by_task ON reservations (task_id);
   CREATE INDEX reservations_by_agent ON reservations (name) WHERE kind = 'slot';`,
  `ALTER TABLE runs ADD COLUMN request_id text;
   CREATE UNIQUE INDEX runs_request_id ON runs (request_id);`,
  // W3C trace context of the submit, so all of a run's work joins its trace.
  `ALTER TABLE runs ADD COLUMN traceparent text NOT NULL DEFAULT '';`,
  // The agent slot a task was given to: only that slot gets a lost answer again.
  `ALTER TABLE tasks ADD COLUMN agent_slot int NOT NULL DEFAULT 0;`,
  // Since when a task waits for its (next) attempt: reservation wait times.
  `ALTER TABLE tasks ADD COLUMN pending_since timestamptz NOT NULL DEFAULT now();`,
  // The agent process a task was given to: only it gets a lost answer again.
  `ALTER TABLE tasks ADD COLUMN agent_incarnation text NOT NULL DEFAULT '';`,
  // Attempts handed back by stopping agents: not failures, not retries.
  `ALTER TABLE tasks ADD COLUMN handbacks int NOT NULL DEFAULT 0;`,
  // Secrets, sealed with AES-256-GCM under a key that is never stored here.
  `CREATE TABLE secrets (
     name text PRIMARY KEY,
     sealed bytea NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   );`,
  // How many WatchRun streams follow the run now (engine/run-watchers.ts).
  `ALTER TABLE runs ADD COLUMN watchers int NOT NULL DEFAULT 0;`,
  // Fails the write path's statement when a change's row was not in the
  // state its writer read (engine/apply-changes.ts), naming them as JSON.
  `CREATE FUNCTION refuse_changes(mismatches json) RETURNS boolean LANGUAGE plpgsql AS $$
   BEGIN
     RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'otto: illegal state change', DETAIL = mismatches::text;
   END $$;`,
  // Retention (engine/sweep-retention.ts): finished runs in the order they
  // finished, and those whose logs or artifacts are still kept.
  `ALTER TABLE runs ADD COLUMN logs_expired_at timestamptz, ADD COLUMN artifacts_expired_at timestamptz;
   CREATE INDEX runs_finished ON runs (finished_at, id) WHERE finished_at IS NOT NULL;
   CREATE INDEX runs_logs_kept ON runs (finished_at, id) WHERE finished_at IS NOT NULL AND logs_expired_at IS NULL;
   CREATE INDEX runs_artifacts_kept ON runs (finished_at, id) WHERE finished_at IS NOT NULL AND artifacts_expired_at IS NULL;`,
  // Projects (repositories whose forges send webhooks), and the runs they
  // start: a run's latest run-level message, and where it came from.
  `CREATE TABLE projects (
     name text PRIMARY KEY,
     repo_url text NOT NULL,
     pipeline_path text NOT NULL,
     default_branch text NOT NULL,
     forge_kind text NOT NULL DEFAULT '',
     forge_api_url text NOT NULL DEFAULT '',
     forge_token_secret text NOT NULL DEFAULT '',
     forge_repository text NOT NULL DEFAULT '',
     branches text[] NOT NULL DEFAULT '{}',
     tags text[] NOT NULL DEFAULT '{}',
     webhook_secret bytea NOT NULL,
     last_run_number bigint NOT NULL DEFAULT 0,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   ALTER TABLE runs ADD COLUMN message text NOT NULL DEFAULT '', ADD COLUMN project text, ADD COLUMN source jsonb,
     ADD COLUMN project_request text;
   CREATE INDEX runs_of_project ON runs (project, created_at DESC, id DESC) WHERE project IS NOT NULL;
   -- What made a project's run (a forge's delivery, a schedule's tick), so
   -- that the same again makes no second run; apart from SubmitRun's ids.
   CREATE UNIQUE INDEX runs_project_request ON runs (project, project_request);`,
  // Commit statuses owed to forges (an outbox: a row is written in the
  // transaction of the change it reports, then queued in pg-boss and sent in
  // order per commit and context). `queued_at`: handed to pg-boss.
  `CREATE TABLE commit_statuses (
     id bigserial PRIMARY KEY,
     run_id uuid NOT NULL,
     project text NOT NULL,
     sha text NOT NULL,
     context text NOT NULL,
     state text NOT NULL,
     description text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now(),
     queued_at timestamptz,
     sent_at timestamptz,
     abandoned_at timestamptz,
     last_error text NOT NULL DEFAULT ''
   );
   CREATE INDEX commit_statuses_unqueued ON commit_statuses (id) WHERE queued_at IS NULL;
   CREATE INDEX commit_statuses_unsent ON commit_statuses (project, sha, context, id) WHERE sent_at IS NULL AND abandoned_at IS NULL;`,
  // Schedules of projects' runs (pg-boss's cron sends each tick), and the
  // commits of pull requests from forks that an admin let have secrets.
  `CREATE TABLE schedules (
     id uuid PRIMARY KEY,
     project text NOT NULL REFERENCES projects ON DELETE CASCADE,
     cron text NOT NULL,
     branch text NOT NULL DEFAULT '',
     created_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE fork_approvals (
     project text NOT NULL REFERENCES projects ON DELETE CASCADE,
     pull_request bigint NOT NULL,
     sha text NOT NULL,
     approved_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (project, pull_request, sha)
   );`,
  // The run a rerun repeats (engine/rerun-run.ts).
  `ALTER TABLE runs ADD COLUMN rerun_of uuid;`,
  // Approvals: a job's question (NULL: it needs none), how long it waits,
  // who approved it, and until when it waits (engine/decide-approval.ts).
  `ALTER TABLE jobs ADD COLUMN approval text, ADD COLUMN approval_timeout_ms bigint NOT NULL DEFAULT 86400000,
     ADD COLUMN approved_by text, ADD COLUMN waiting_until timestamptz;
   CREATE INDEX jobs_waiting ON jobs (waiting_until) WHERE waiting_until IS NOT NULL;`,
  // Concurrency groups (engine/concurrency-group.ts): a run's group, its
  // limit, whether it is admitted (NULL: in no group) and its place in line.
  `CREATE SEQUENCE group_line;
   ALTER TABLE runs ADD COLUMN concurrency_group text, ADD COLUMN concurrency_limit int, ADD COLUMN admitted boolean, ADD COLUMN group_place bigint;
   CREATE INDEX runs_in_groups ON runs (concurrency_group, group_place) WHERE finished_at IS NULL AND concurrency_group IS NOT NULL;
   CREATE INDEX runs_waiting_in_line ON runs (shard, group_place) WHERE admitted = false AND finished_at IS NULL;`,
  // A job's condition (its \`if\`) and what it may read (engine/job-gate.ts); NULL: none.
  `ALTER TABLE jobs ADD COLUMN condition jsonb;`,
  // A job a rerun reused: the run and attempt that made its result, whose
  // artifacts its dependents get (engine/rerun-run.ts, engine/artifact-sources.ts).
  `ALTER TABLE jobs ADD COLUMN reused_from_run uuid, ADD COLUMN reused_from_attempt int;`,
  // Jobs added to a run while it ran (engine/add-jobs.ts): the job and
  // attempt whose step added them; NULL: the pipeline's own.
  `ALTER TABLE jobs ADD COLUMN added_by jsonb;`,
  // Every run's journal in one order (journal-feed.ts): the id of the
  // transaction that wrote each entry, so that entries are read only once
  // every transaction that could still write before them has ended (below
  // the commit horizon); the run's state as of the entry; and the streams
  // that follow every run, for whom every append is announced.
  `ALTER TABLE journal ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id(), ADD COLUMN run_state smallint;
   CREATE INDEX journal_in_commit_order ON journal (xid, run_id, seq);
   CREATE TABLE journal_followers (
     id uuid PRIMARY KEY,
     expires_at timestamptz NOT NULL
   );`,
  // ListRuns' filters by pipeline and by state (list-runs.ts), newest first.
  `CREATE INDEX runs_of_pipeline ON runs (name, created_at DESC, id DESC);
   CREATE INDEX runs_in_state ON runs (state, created_at DESC, id DESC);`,
  // How many jobs may hold each of a job's locks at once, where more than
  // one (reservations.ts).
  `ALTER TABLE jobs ADD COLUMN lock_limits jsonb NOT NULL DEFAULT '{}';`,
];
