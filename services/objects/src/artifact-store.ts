import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Pool } from "../../kit/src/db.ts";
import type { ObjectStore } from "./object-store.ts";

export interface ArtifactRef {
  runId: string;
  job: string;
  attempt: number;
  name: string;
}

export interface StoredArtifact extends ArtifactRef {
  size: number;
  createdAt: Date;
}

export const maxArtifactBytes = 1024 ** 3;
export const maxArtifactsPerAttempt = 100;
export const urlLifetimeSeconds = 15 * 60;

// An artifact's object key: its attempt's prefix (a UUID, a job name of at
// most 64 characters, a number) and the SHA-256 of its name. A name may have
// 255 characters, more than a store that keeps each key as files (s3rver, a
// MinIO on a file system) can fit in one file name with its own suffixes;
// any store holds 64 hex digits. The name is kept in objects.artifacts.
const keyOf = (a: ArtifactRef) => `artifacts/${a.runId}/${a.job}/attempt-${a.attempt}/${createHash("sha256").update(a.name).digest("hex")}`;

// Artifacts: bytes in object storage under their attempt's prefix, moved by
// presigned URLs; a row per artifact once its upload is complete.
export class ArtifactStore {
  readonly #pool: Pool;
  readonly #objects: ObjectStore;

  constructor(pool: Pool, objects: ObjectStore) {
    this.#pool = pool;
    this.#objects = objects;
  }

  async uploadUrl(artifact: ArtifactRef, size: number): Promise<{ url: string; expiresAt: Date }> {
    if (size > maxArtifactBytes) {
      throw new ConnectError(`artifact ${artifact.name} is ${size} bytes; at most ${maxArtifactBytes} allowed`, Code.ResourceExhausted);
    }
    const { rows } = await this.#pool.query(
      "SELECT count(*)::int AS n FROM objects.artifacts WHERE run_id = $1 AND job = $2 AND attempt = $3 AND name <> $4",
      [artifact.runId, artifact.job, artifact.attempt, artifact.name],
    );
    if (rows[0].n >= maxArtifactsPerAttempt) {
      throw new ConnectError(`a job keeps at most ${maxArtifactsPerAttempt} artifacts`, Code.ResourceExhausted);
    }
    return this.#presigned("put", artifact);
  }

  // A URL good for one object, for urlLifetimeSeconds.
  async #presigned(verb: "put" | "get", artifact: ArtifactRef): Promise<{ url: string; expiresAt: Date }> {
    const expiresAt = new Date(Date.now() + urlLifetimeSeconds * 1000);
    const key = keyOf(artifact);
    const url = verb === "put" ? await this.#objects.presignedPut(key, urlLifetimeSeconds) : await this.#objects.presignedGet(key, urlLifetimeSeconds);
    return { url, expiresAt };
  }

  async complete(artifact: ArtifactRef): Promise<StoredArtifact> {
    let size: number;
    try {
      size = await this.#objects.size(keyOf(artifact));
    } catch {
      throw new ConnectError(`artifact ${artifact.name} was not uploaded; PUT it to the URL from CreateArtifactUpload first`, Code.FailedPrecondition);
    }
    const { rows } = await this.#pool.query(
      `INSERT INTO objects.artifacts (run_id, job, attempt, name, size) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (run_id, job, attempt, name) DO UPDATE SET size = $5
       RETURNING *`,
      [artifact.runId, artifact.job, artifact.attempt, artifact.name, size],
    );
    return toArtifact(rows[0]);
  }

  async list(runId: string, job: string): Promise<StoredArtifact[]> {
    const { rows } = await this.#pool.query(
      "SELECT * FROM objects.artifacts WHERE run_id = $1 AND ($2 = '' OR job = $2) ORDER BY job, attempt, name",
      [runId, job],
    );
    return rows.map(toArtifact);
  }

  // attempt 0: the latest attempt that stored an artifact of this name.
  async downloadUrl(ref: ArtifactRef): Promise<{ url: string; expiresAt: Date; artifact: StoredArtifact }> {
    const { rows } = await this.#pool.query(
      `SELECT * FROM objects.artifacts WHERE run_id = $1 AND job = $2 AND name = $3 AND ($4 = 0 OR attempt = $4)
       ORDER BY attempt DESC LIMIT 1`,
      [ref.runId, ref.job, ref.name, ref.attempt],
    );
    if (rows.length === 0) {
      throw new ConnectError(`run ${ref.runId} has no artifact ${ref.name} of job ${ref.job}${ref.attempt ? ` in attempt ${ref.attempt}` : ""}`, Code.NotFound);
    }
    const artifact = toArtifact(rows[0]);
    return { ...(await this.#presigned("get", artifact)), artifact };
  }
}

function toArtifact(row: any): StoredArtifact {
  return { runId: row.run_id, job: row.job, attempt: row.attempt, name: row.name, size: Number(row.size), createdAt: row.created_at };
}
