import { RunService, type WatchRunResponse } from "@otto/gen/v1/run_service_pb";
import { isBrokenConnection, isUnreachable, type RegistryClient } from "@otto/kit/registry-client";

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
  for (let failures = 0; ; ) {
    try {
      // The first event is awaited inside the call, so that a coordinator
      // that cannot be reached is passed over for the next one.
      const stream = await registry.call("coordinator", RunService, async (c) => {
        const iterator = c.watchRun({ runId, afterSeq: after, withWaits }, { signal, timeoutMs: 0 })[Symbol.asyncIterator]();
        return { iterator, first: await iterator.next() };
      });
      try {
        for (let next = stream.first; !next.done; next = await stream.iterator.next()) {
          if (next.value.event) after = next.value.event.seq;
          failures = 0;
          yield next.value;
        }
      } finally {
        // A follower that stops early closes the coordinator's stream too.
        await stream.iterator.return?.();
      }
      return;
    } catch (err) {
      if (!(isUnreachable(err) || isBrokenConnection(err)) || ++failures > 5 || signal.aborted) throw err;
    }
  }
}
