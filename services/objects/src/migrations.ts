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
];
