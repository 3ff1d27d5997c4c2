import type { WatchRunResponse } from "@otto/gen/v1/run_service_pb";
import type { RegistryClient } from "@otto/kit/registry-client";
import { coordinatorStream, type CoordinatorClient } from "./coordinator-stream.ts";

// A run's journal after `afterSeq` from any coordinator, until the run is
// final, with why its jobs wait whenever that changes. If the coordinator
// goes away mid-stream, the stream resumes on a peer from the last event
// seen, so no event is lost or repeated (the peer sends the waits afresh).
export async function* followJournal(
  registry: RegistryClient,
  runId: string,
  afterSeq: bigint,
  signal: AbortSignal,
  withWaits = false,
): AsyncGenerator<WatchRunResponse> {
  let after = afterSeq;
  const open = (c: CoordinatorClient) => c.watchRun({ runId, afterSeq: after, withWaits }, { signal, timeoutMs: 0 });
  for await (const message of coordinatorStream(registry, open, signal)) {
    if (message.event) after = message.event.seq;
    yield message;
  }
}
