import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Pool } from "@otto/kit/db";
import type { ObjectStore } from "./object-store.ts";
import { attemptEnded, attemptIsLive, requireLiveAttempt, type AttemptRef } from "@otto/kit/live-attempts";
import { jobKey } from "@otto/kit/job-key";

export interface ArtifactRef {
  runId: string;
  job: string;
  attempt: number;
  name: string;
}

export interface StoredArtifact extends ArtifactRef {
  size: number;
  createdAt: Date;
  sha256: string;
}

export const maxArtifactBytes = 1024 ** 3;
export const maxArtifactsPerAttempt = 100;
// Downloads are for people and tools; an upload URL is used by the agent
// at once, and is the window in which a URL handed out before its attempt
// ended could still replace the object's bytes.
export const urlLifetimeSeconds = 15 * 60;
export const uploadUrlLifetimeSeconds = 2 * 60;

// An artifact's object key: its attempt's prefix (a UUID, the job's name as
// a key segment, a number) and the SHA-256 of its name. A name may have
// 255 characters, more than a store that keeps each key as files (s3rver, a
// MinIO on a file system) can fit in one file name with its own suffixes;
// any store holds 64 hex digits. The name is kept in objects.artifacts, with
// the key (artifacts stored before keys were hashed keep theirs).
const keyOf = (a: ArtifactRef) => `${artifactsPrefixOf(a.runId)}${jobKey(a.job)}/attempt-${a.attempt}/${createHash("sha256").update(a.name).digest("hex")}`;

// Where every artifact object of a run is (keys from before they were
// hashed too), also one whose upload never completed and has no row.
export function artifactsPrefixOf(runId: string): string {
  return `artifacts/${runId}/`;
}

// Artifacts: bytes in object storage under their attempt's prefix, moved by
// presigned URLs; a row per artifact once its upload is complete.
export class ArtifactStore {
  readonly #pool: Pool;
  readonly #objects: ObjectStore;

  constructor(pool: Pool, objects: ObjectStore) {
    this.#pool = pool;
    this.#objects = objects;
  }

  // `writer`: the agent whose live attempt this must be (undefined: no check).
  async uploadUrl(artifact: ArtifactRef, size: number, writer?: string): Promise<{ url: string; expiresAt: Date }> {
    if (size > maxArtifactBytes) {
      throw new ConnectError(`artifact ${artifact.name} is ${size} bytes; at most ${maxArtifactBytes} allowed`, Code.ResourceExhausted);
    }
    const { rows } = await this.#pool.query(
      `SELECT count(*)::int AS n, ${attemptIsLive("$1", "$2", "$3", "$5")} AS live
       FROM objects.artifacts WHERE run_id = $1 AND job = $2 AND attempt = $3 AND name <> $4`,
      [artifact.runId, artifact.job, artifact.attempt, artifact.name, writer ?? null],
    );
    if (!rows[0].live) throw attemptEnded(artifact);
    if (rows[0].n >= maxArtifactsPerAttempt) {
      throw new ConnectError(`a job keeps at most ${maxArtifactsPerAttempt} artifacts`, Code.ResourceExhausted);
    }
    return this.#presigned("put", artifact);
  }

  // A URL good for one object, for its verb's lifetime.
  async #presigned(verb: "put" | "get", artifact: ArtifactRef, key = keyOf(artifact)): Promise<{ url: string; expiresAt: Date }> {
    const lifetime = verb === "put" ? uploadUrlLifetimeSeconds : urlLifetimeSeconds;
    const expiresAt = new Date(Date.now() + lifetime * 1000);
    const url = verb === "put" ? await this.#objects.presignedPut(key, lifetime) : await this.#objects.presignedGet(key, lifetime);
    return { url, expiresAt };
  }

  // `writer`: the agent whose live attempt this must be (undefined: no check).
  // Checked before storage is asked, and again as the row is written.
  async complete(artifact: ArtifactRef, sha256: string, writer?: string): Promise<StoredArtifact> {
    await requireLiveAttempt(this.#pool, artifact, writer);
    let size: number;
    try {
      size = await this.#objects.size(keyOf(artifact));
    } catch {
      throw new ConnectError(`artifact ${artifact.name} was not uploaded; PUT it to the URL from CreateArtifactUpload first`, Code.FailedPrecondition);
    }
    const { rows } = await this.#pool.query(
      `INSERT INTO objects.artifacts (run_id, job, attempt, name, size, object_key, sha256)
       SELECT $1::uuid, $2::text, $3::int, $4::text, $5::bigint, $7::text, $8::text WHERE ${attemptIsLive("$1", "$2", "$3", "$6")}
       ON CONFLICT (run_id, job, attempt, name) DO UPDATE SET size = $5, object_key = $7, sha256 = $8
       RETURNING *`,
      [artifact.runId, artifact.job, artifact.attempt, artifact.name, size, writer ?? null, keyOf(artifact), sha256],
    );
    if (rows.length === 0) throw attemptEnded(artifact);
    return toArtifact(rows[0]);
  }

  async list(runId: string, job: string): Promise<StoredArtifact[]> {
    const { rows } = await this.#pool.query(
      "SELECT * FROM objects.artifacts WHERE run_id = $1 AND ($2 = '' OR job = $2) AND expired_at IS NULL ORDER BY job, attempt, name",
      [runId, job],
    );
    return rows.map(toArtifact);
  }

  // The artifacts one attempt stored, each with a URL to fetch it, for
  // `reader`, a live attempt of the job that needs them (held by the agent
  // `agent`; undefined: no check). An artifact retention deleted is refused
  // by name: the reader would miss a file it expects.
  async neededBy(reader: AttemptRef, agent: string | undefined, source: AttemptRef): Promise<Array<{ url: string; expiresAt: Date; artifact: StoredArtifact }>> {
    const { rows } = await this.#pool.query(
      `SELECT ${attemptIsLive("$4::uuid", "$5", "$6::int", "$7")} AS live,
         (SELECT coalesce(json_agg(a ORDER BY a.name), '[]') FROM objects.artifacts a WHERE run_id = $1 AND job = $2 AND attempt = $3) AS artifacts`,
      [source.runId, source.job, source.attempt, reader.runId, reader.job, reader.attempt, agent ?? null],
    );
    if (!rows[0].live) throw attemptEnded(reader);
    const stored: any[] = rows[0].artifacts;
    const expired = stored.find((row) => row.expired_at);
    if (expired) {
      throw new ConnectError(
        `artifact ${expired.name} of job ${source.job} (attempt ${source.attempt}) of run ${source.runId} was deleted by retention on ${new Date(expired.expired_at).toISOString()}`,
        Code.NotFound,
      );
    }
    return Promise.all(
      stored.map(async (row) => {
        const artifact = toArtifact({ ...row, created_at: new Date(row.created_at) });
        return { ...(await this.#presigned("get", artifact, row.object_key)), artifact };
      }),
    );
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
    if (rows[0].expired_at) {
      throw new ConnectError(
        `artifact ${ref.name} of job ${ref.job} (attempt ${artifact.attempt}) of run ${ref.runId} was deleted by retention on ${rows[0].expired_at.toISOString()}`,
        Code.NotFound,
      );
    }
    return { ...(await this.#presigned("get", artifact, rows[0].object_key)), artifact };
  }
}

function toArtifact(row: any): StoredArtifact {
  return { runId: row.run_id, job: row.job, attempt: row.attempt, name: row.name, size: Number(row.size), createdAt: row.created_at, sha256: row.sha256 ?? "" };
}
