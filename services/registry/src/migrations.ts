export const migrations = [
  `CREATE TABLE instances (
     service text NOT NULL,
     instance_id text NOT NULL,
     url text NOT NULL,
     labels text[] NOT NULL DEFAULT '{}',
     slots int NOT NULL DEFAULT 0,
     lease_seconds int NOT NULL,
     lease_expires_at timestamptz NOT NULL,
     registered_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (service, instance_id)
   )`,
];
