import { createHash, timingSafeEqual } from "node:crypto";

// The attempts whose artifacts a task gets (those of the jobs it needs), as
// the coordinator lists them in the task. Its task token carries a digest of
// the list rather than the list itself (a job may need a hundred jobs, and a
// token rides in a header), and the task sends the list back as it got it:
// the objects service lets it read the artifacts of those attempts and no
// others, checking the list against the token alone.
export interface ArtifactSource {
  runId: string;
  job: string;
  attempt: number;
}

export function artifactSourcesDigest(sources: readonly ArtifactSource[]): string {
  const canonical = JSON.stringify(sources.map((source) => [source.runId, source.job, source.attempt]));
  return createHash("sha256").update(canonical).digest("base64url");
}

// Whether `sources` is the list whose digest a task token carries
// (undefined: a token that vouches for none).
export function vouchedFor(digest: string | undefined, sources: readonly ArtifactSource[]): boolean {
  if (digest === undefined || sources.length === 0) return false;
  const given = Buffer.from(artifactSourcesDigest(sources));
  const held = Buffer.from(digest);
  return given.length === held.length && timingSafeEqual(given, held);
}
