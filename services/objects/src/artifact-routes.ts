import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ArtifactSchema, ArtifactService, ArtifactStoreService, type Artifact } from "@otto/gen/v1/artifact_service_pb";
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
        return { artifact: toProto(await artifacts.complete(req, writer)) };
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

function requireName(name: string) {
  const problem = artifactNameProblem(name);
  if (problem) throw new ConnectError(problem, Code.InvalidArgument);
}

function toProto(artifact: StoredArtifact): Artifact {
  return create(ArtifactSchema, { ...artifact, size: BigInt(artifact.size), createdAt: timestampFromDate(artifact.createdAt) });
}
