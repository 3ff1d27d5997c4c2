import type { ServiceImpl } from "@connectrpc/connect";
import { ArtifactService, type GetArtifactUrlRequest, type GetArtifactUrlResponse } from "@otto/gen/v1/artifact_service_pb";
import type { ServiceCaller } from "@otto/kit/service-caller";

// The public ArtifactService: the objects service answers, with presigned
// URLs that carry the bytes straight from storage to the caller.
export function artifactServiceImpl(peers: ServiceCaller): ServiceImpl<typeof ArtifactService> {
  return {
    listArtifacts: (req, ctx) =>
      peers.call("objects", ArtifactService, (c) => c.listArtifacts(req, { signal: ctx.signal }), { idempotent: true, retryForMs: 5_000 }),
    getArtifactUrl: (req, ctx) => artifactUrl(peers, req, ctx.signal),
  };
}

// GetArtifactUrl, also for the gateway's own download route (artifact-downloads.ts).
export function artifactUrl(peers: ServiceCaller, req: GetArtifactUrlRequest, signal: AbortSignal): Promise<GetArtifactUrlResponse> {
  return peers.call("objects", ArtifactService, (c) => c.getArtifactUrl(req, { signal }), { idempotent: true, retryForMs: 5_000 });
}
