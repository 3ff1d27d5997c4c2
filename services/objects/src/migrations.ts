export const migrations = [
  `CREATE TABLE logs (
     run_id uuid NOT NULL,
     job text NOT NULL,
     state text NOT NULL CHECK (state IN ('open', 'closed')),
     last_seq bigint NOT NULL DEFAULT 0,
     size bigint NOT NULL DEFAULT 0,
     object_key text NOT NULL DEFAULT '',
     created_at timestamptz NOT NULL DEFAULT now(),
     closed_at timestamptz,
     PRIMARY KEY (run_id, job)
   );
   -- Live chunks of open logs; moved to object storage when the log closes.
   CREATE TABLE log_chunks (
     run_id uuid NOT NULL,
     job text NOT NULL,
     seq bigint NOT NULL,
     start_offset bigint NOT NULL,
     text text NOT NULL,
     PRIMARY KEY (run_id, job, seq),
     FOREIGN KEY (run_id, job) REFERENCES logs ON DELETE CASCADE
   );`,
  // One log per attempt of a job.
  `ALTER TABLE log_chunks DROP CONSTRAINT log_chunks_run_id_job_fkey;
   ALTER TABLE log_chunks DROP CONSTRAINT log_chunks_pkey;
   ALTER TABLE logs DROP CONSTRAINT logs_pkey;
   ALTER TABLE logs ADD COLUMN attempt int NOT NULL DEFAULT 1;
   ALTER TABLE log_chunks ADD COLUMN attempt int NOT NULL DEFAULT 1;
   ALTER TABLE logs ADD PRIMARY KEY (run_id, job, attempt);
   ALTER TABLE log_chunks ADD PRIMARY KEY (run_id, job, attempt, seq);
   ALTER TABLE log_chunks ADD FOREIGN KEY (run_id, job, attempt) REFERENCES logs ON DELETE CASCADE;`,
  // Artifacts whose upload is complete; the bytes are in object storage.
  `CREATE TABLE artifacts (
     run_id uuid NOT NULL,
     job text NOT NULL,
     attempt int NOT NULL,
     name text NOT NULL,
     size bigint NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (run_id, job, attempt, name)
   );`,
  // Where each artifact's bytes are: artifacts stored from now on under the
  // SHA-256 of their name, those stored before under the name itself.
  `ALTER TABLE artifacts ADD COLUMN object_key text;
   UPDATE artifacts SET object_key = 'artifacts/' || run_id || '/' || job || '/attempt-' || attempt || '/' || name;
   ALTER TABLE artifacts ALTER COLUMN object_key SET NOT NULL;`,
  // A closed log still to be moved to object storage, and from when on
  // (log-archiver.ts): its chunks stay until it is. The trace of the close,
  // which the archive joins.
  `ALTER TABLE logs ADD COLUMN archive_due timestamptz;
   ALTER TABLE logs ADD COLUMN archive_trace text NOT NULL DEFAULT '';
   CREATE INDEX logs_archive_due ON logs (archive_due) WHERE archive_due IS NOT NULL;`,
  // How many ReadLog calls follow an attempt's log now (the log may not
  // exist yet): its writes are announced (NOTIFY) only while some do.
  `CREATE TABLE log_followers (
     run_id uuid NOT NULL,
     job text NOT NULL,
     attempt int NOT NULL,
     followers int NOT NULL,
     PRIMARY KEY (run_id, job, attempt)
   );`,
  // Logs as printed (issue 14): each chunk's text compressed with zstd, its
  // size, line ends and segments (who printed what when, log-segments.ts)
  // beside it instead of a time and step on every line. An archived chunk
  // keeps its row without its text: its bytes are at stored_offset in the
  // log's object. ends_line: whether a chunk's text ends at a line's end
  // (only a line longer than a chunk goes on in the next). Older chunks keep their text (already with a prefix on
  // each line) and have no segments.
  `ALTER TABLE log_chunks ALTER COLUMN text DROP NOT NULL;
   ALTER TABLE log_chunks
     ADD COLUMN zstd bytea,
     ADD COLUMN zstd_bytes bigint NOT NULL DEFAULT 0,
     ADD COLUMN bytes bigint,
     ADD COLUMN start_line bigint NOT NULL DEFAULT 0,
     ADD COLUMN lines bigint NOT NULL DEFAULT 0,
     ADD COLUMN steps text[] NOT NULL DEFAULT '{}',
     ADD COLUMN first_ms bigint NOT NULL DEFAULT 0,
     ADD COLUMN segments bytea NOT NULL DEFAULT '',
     ADD COLUMN stored_offset bigint,
     ADD COLUMN ends_line boolean NOT NULL DEFAULT true;
   ALTER TABLE log_chunks ALTER COLUMN zstd SET STORAGE EXTERNAL;
   UPDATE log_chunks SET bytes = octet_length(text), lines = length(text) - length(replace(text, E'\\n', ''));
   UPDATE log_chunks c SET start_line = b.before
     FROM (SELECT run_id, job, attempt, seq, sum(lines) OVER (PARTITION BY run_id, job, attempt ORDER BY seq) - lines AS before FROM log_chunks) b
     WHERE c.run_id = b.run_id AND c.job = b.job AND c.attempt = b.attempt AND c.seq = b.seq;
   ALTER TABLE log_chunks ALTER COLUMN bytes SET NOT NULL;
   ALTER TABLE logs ADD COLUMN lines bigint NOT NULL DEFAULT 0;
   UPDATE logs l SET lines = c.lines FROM (SELECT run_id, job, attempt, sum(lines) AS lines FROM log_chunks GROUP BY 1, 2, 3) c
     WHERE l.run_id = c.run_id AND l.job = c.job AND l.attempt = c.attempt;`,
  // Retention (object-expiry.ts): a log whose text retention deleted keeps
  // its row, marked expired and since when, so that a read can say so
  // rather than fail; an artifact likewise.
  `ALTER TABLE logs DROP CONSTRAINT logs_state_check;
   ALTER TABLE logs ADD CONSTRAINT logs_state_check CHECK (state IN ('open', 'closed', 'expired'));
   ALTER TABLE logs ADD COLUMN expired_at timestamptz;
   ALTER TABLE artifacts ADD COLUMN expired_at timestamptz;`,
  // The SHA-256 of an artifact's bytes, as its agent uploaded them.
  `ALTER TABLE artifacts ADD COLUMN sha256 text NOT NULL DEFAULT '';`,
];
