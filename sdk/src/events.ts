import { Code, ConnectError } from "@connectrpc/connect";
import type { RunEvent } from "@otto/gen/v1/run_pb";
import type { RunsFilter, RunSummary } from "@otto/gen/v1/run_service_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { RunsFilterSchema } from "@otto/gen/v1/run_service_pb";
import type { OttoClient } from "./clients.ts";

export interface WatchRunsOptions {
  // A `cursor` this stream gave before: resume after it. Empty: from now.
  afterCursor?: string;
  // Without a cursor: from the oldest event kept instead of from now.
  fromBeginning?: boolean;
  filter?: MessageInitShape<typeof RunsFilterSchema> | RunsFilter;
  signal?: AbortSignal;
  // Called with each cursor the stream passes (also those of messages with
  // no event): keep the last one to resume after a restart.
  onCursor?: (cursor: string) => void;
}

export interface RunsStreamEvent {
  event: RunEvent;
  run: RunSummary;
  // Pass as `afterCursor` to resume after this event.
  cursor: string;
}

// Every run's events as they happen (RunService.WatchRuns), until `signal`
// aborts. A connection to the gateway that breaks or a gateway that is
// unavailable is tried again from the last cursor, so nothing is lost or
// repeated.
export async function* watchRuns(client: OttoClient, options: WatchRunsOptions = {}): AsyncGenerator<RunsStreamEvent> {
  let afterCursor = options.afterCursor ?? "";
  for (let failures = 0; ; ) {
    try {
      const stream = client.runs.watchRuns(
        { afterCursor, fromBeginning: afterCursor === "" && (options.fromBeginning ?? false), filter: options.filter },
        { signal: options.signal, timeoutMs: 0 },
      );
      for await (const message of stream) {
        failures = 0;
        afterCursor = message.cursor;
        options.onCursor?.(message.cursor);
        if (message.event && message.run) yield { event: message.event, run: message.run, cursor: message.cursor };
      }
      return;
    } catch (err) {
      if (options.signal?.aborted || !mayResume(err) || ++failures > 5) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200 * failures));
    }
  }
}

function mayResume(err: unknown): boolean {
  return err instanceof ConnectError && (err.code === Code.Unavailable || err.code === Code.Aborted || (err.code === Code.Internal && /ECONNRESET|socket hang up|premature close|other side closed/i.test(err.rawMessage)));
}
