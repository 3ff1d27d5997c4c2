import { RunService, type RunsFilter, type WatchRunsResponse } from "@otto/gen/v1/run_service_pb";
import { isBrokenConnection, isUnreachable, type RegistryClient } from "@otto/kit/registry-client";

// Every run's journal from any coordinator (WatchRuns). If the coordinator
// goes away mid-stream, the stream resumes on a peer after the last cursor
// passed on, so no event is lost or repeated. Only the first call may start
// "now" or from the beginning: every later one resumes from a cursor (the
// coordinator's first message always carries one).
export async function* followEveryJournal(
  registry: RegistryClient,
  request: { afterCursor: string; fromBeginning: boolean; filter?: RunsFilter },
  signal: AbortSignal,
): AsyncGenerator<WatchRunsResponse> {
  let afterCursor = request.afterCursor;
  let resumed = false;
  for (let failures = 0; ; ) {
    try {
      const stream = await registry.call("coordinator", RunService, async (c) => {
        const iterator = c
          .watchRuns({ afterCursor, fromBeginning: request.fromBeginning && afterCursor === "", filter: request.filter }, { signal, timeoutMs: 0 })
          [Symbol.asyncIterator]();
        return { iterator, first: await iterator.next() };
      });
      try {
        for (let next = stream.first; !next.done; next = await stream.iterator.next()) {
          const message = next.value;
          failures = 0;
          // A peer's first message repeats the cursor resumed from.
          const repeat = resumed && !message.event && message.cursor === afterCursor;
          afterCursor = message.cursor;
          if (!repeat) yield message;
        }
      } finally {
        await stream.iterator.return?.();
      }
      return;
    } catch (err) {
      if (!(isUnreachable(err) || isBrokenConnection(err)) || ++failures > 5 || signal.aborted) throw err;
      resumed = afterCursor !== "";
    }
  }
}
