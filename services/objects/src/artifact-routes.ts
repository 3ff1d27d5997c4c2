import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ArtifactSchema, ArtifactService, ArtifactStoreService, type Artifact, type ArtifactSource } from "@otto/gen/v1/artifact_service_pb";
import { vouchedFor } from "@otto/kit/artifact-sources";
import { callerOf } from "@otto/kit/caller";
import { artifactNameProblem } from "@otto/contracts/artifact-name";
import type { ArtifactStore, StoredArtifact } from "./artifact-store.ts";
import { requireOwnTask } from "./routes.ts";

export function artifactRoutes(artifacts: ArtifactStore) {
  return (router: ConnectRouter) => {
    router.service(ArtifactStoreService, {
      async createArtifactUpload(req, ctx) {
        const writer = requireOwnTask(ctx, req.runId, req.job, req.attempt);
        requireName(req.name);
        const { url, expiresAt } = await artifacts.uploadUrl(req, Number(req.size), writer);
        return { url, expiresAt: timestampFromDate(expiresAt) };
      },
      async completeArtifactUpload(req, ctx) {
        const writer = requireOwnTask(ctx, req.runId, req.job, req.attempt);
        requireName(req.name);
        return { artifact: toProto(await artifacts.complete(req, req.sha256, writer)) };
      },
      async listNeededArtifacts(req, ctx) {
        const reader = requireOwnTask(ctx, req.runId, req.job, req.attempt);
        const source = requireNeededSource(ctx, req.sources, req.need);
        const needed = await artifacts.neededBy(req, reader, source);
        return {
          artifacts: needed.map(({ url, expiresAt, artifact }) => ({ url, expiresAt: timestampFromDate(expiresAt), artifact: toProto(artifact) })),
        };
      },
    });
    router.service(ArtifactService, {
      async listArtifacts(req) {
        return { artifacts: (await artifacts.list(req.runId, req.job)).map(toProto) };
      },
      async getArtifactUrl(req) {
        requireName(req.name);
        const { url, expiresAt, artifact } = await artifacts.downloadUrl(req);
        return { url, expiresAt: timestampFromDate(expiresAt), artifact: toProto(artifact) };
      },
    });
  };
}

// The source of the needed job's artifacts, from the list the task's token
// vouches for (without TLS there are no task tokens, and no check).
function requireNeededSource(ctx: HandlerContext, sources: ArtifactSource[], need: string): ArtifactSource {
  const caller = callerOf(ctx);
  if (caller.kind === "task" && !vouchedFor(caller.artifactSources, sources)) {
    throw new ConnectError(
      `these artifact sources are not the ones the coordinator gave attempt ${caller.attempt} of job ${caller.job}: a task reads only the artifacts of the jobs it needs`,
      Code.PermissionDenied,
    );
  }
  const source = sources.find((s) => s.job === need);
  if (!source) throw new ConnectError(`job ${need} is not among the needs whose artifacts this task gets`, Code.PermissionDenied);
  return source;
}

function requireName(name: string) {
  const problem = artifactNameProblem(name);
  if (problem) throw new ConnectError(problem, Code.InvalidArgument);
}

function toProto(artifact: StoredArtifact): Artifact {
  return create(ArtifactSchema, { ...artifact, size: BigInt(artifact.size), createdAt: timestampFromDate(artifact.createdAt) });
}
