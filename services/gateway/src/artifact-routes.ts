import type { ServiceImpl } from "@connectrpc/connect";
import { ArtifactService } from "../../../gen/otto/v1/artifact_service_pb.ts";
import type { RegistryClient } from "../../kit/src/registry-client.ts";

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
