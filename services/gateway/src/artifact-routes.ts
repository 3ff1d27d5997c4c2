import type { ServiceImpl } from "@connectrpc/connect";
import { ArtifactService } from "@otto/gen/v1/artifact_service_pb";
import type { RegistryClient } from "@otto/kit/registry-client";

// The public ArtifactService: the objects service answers, with presigned
// URLs that carry the bytes straight from storage to the caller.
export function artifactServiceImpl(registry: RegistryClient): ServiceImpl<typeof ArtifactService> {
  return {
    listArtifacts: (req, ctx) =>
      registry.call("objects", ArtifactService, (c) => c.listArtifacts(req, { signal: ctx.signal }), { idempotent: true, retryForMs: 5_000 }),
    getArtifactUrl: (req, ctx) =>
      registry.call("objects", ArtifactService, (c) => c.getArtifactUrl(req, { signal: ctx.signal }), { idempotent: true, retryForMs: 5_000 }),
  };
}
