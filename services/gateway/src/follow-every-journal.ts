import type { RunsFilter, WatchRunsResponse } from "@otto/gen/v1/run_service_pb";
import type { RegistryClient } from "@otto/kit/registry-client";
import { coordinatorStream, type CoordinatorClient } from "./coordinator-stream.ts";

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
  let tries = 0;
  let resumed = false;
  const open = (c: CoordinatorClient) => {
    resumed = tries++ > 0 && afterCursor !== "";
    return c.watchRuns({ afterCursor, fromBeginning: request.fromBeginning && afterCursor === "", filter: request.filter }, { signal, timeoutMs: 0 });
  };
  for await (const message of coordinatorStream(registry, open, signal)) {
    // A peer's first message repeats the cursor resumed from.
    const repeat = resumed && !message.event && message.cursor === afterCursor;
    afterCursor = message.cursor;
    if (!repeat) yield message;
  }
}
