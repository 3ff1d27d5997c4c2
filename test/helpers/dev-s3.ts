import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Supervisor } from "@otto/launcher/supervisor";
import { repoRoot } from "@otto/launcher/system";
import { ensureS3Credentials } from "@otto/launcher/s3-credentials";
import { ObjectStore } from "@otto/objects/object-store";

export interface DevS3 {
  store: ObjectStore;
  // A store that deletes through this one and records every key it deleted.
  recordingRemovals(): { store: Pick<ObjectStore, "removeMany" | "keysUnder">; removed: string[] };
  // Every key in the bucket under `prefix`, sorted.
  keys(prefix?: string): Promise<string[]>;
  stop(): Promise<void>;
}

// The development S3 endpoint `npm start` runs (s3rver behind the Signature
// V4 check), as a process of its own in a fresh directory, with the objects
// service's client for its bucket.
export async function startDevS3(): Promise<DevS3> {
  const dataDir = await mkdtemp(join(tmpdir(), "otto-s3-"));
  await mkdir(join(dataDir, "s3"));
  const credentials = await ensureS3Credentials(dataDir);
  const supervisor = new Supervisor({ mode: "quiet", logFile: join(dataDir, "s3.log") });
  const endpoint = await supervisor.start({
    name: "s3",
    entry: join(repoRoot, "services/launcher/src/s3-dev-server.ts"),
    env: { OTTO_S3_DIR: join(dataDir, "s3"), OTTO_S3_ACCESS_KEY: credentials.accessKey, OTTO_S3_SECRET_KEY: credentials.secretKey },
  });
  const config = { endpoint, ...credentials, bucket: "otto", region: "us-east-1", idleTimeoutMs: 10_000 };
  const store = new ObjectStore(config);
  await store.ensureBucket();
  return {
    store,
    recordingRemovals() {
      const removed: string[] = [];
      const removeMany = async (keys: string[]) => {
        removed.push(...keys);
        await store.removeMany(keys);
      };
      return { store: { removeMany, keysUnder: (prefix: string) => store.keysUnder(prefix) }, removed };
    },
    async keys(prefix = "") {
      return (await store.keysUnder(prefix)).sort();
    },
    async stop() {
      await supervisor.stopAll();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
