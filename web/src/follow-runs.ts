import { watchRuns, type OttoClient, type RunSummary } from "@otto/sdk";
import { isAbort } from "./session.ts";

// What a page that keeps a list live does with every run's events.
export interface RunsFollower {
  // Reads what the page shows now. Called once the stream's first cursor
  // has come, so that no change between the read and the stream is
  // missed; events wait until it has resolved. One that fails is tried
  // again at the stream's next message.
  start(): Promise<void>;
  // An event's run, after `start` (events that waited for it first).
  changed(run: RunSummary): void;
  failed(err: unknown): void;
}

// Follows WatchRuns (`pipeline` filtered on the server) until `signal`
// aborts. The SDK resumes a broken stream from its cursor; a stream that
// cannot be resumed is opened anew after a pause, and the page read again.
export async function followRuns(client: OttoClient, pipeline: string, signal: AbortSignal, follower: RunsFollower): Promise<void> {
  for (let retryMs = 1_000; !signal.aborted; retryMs = Math.min(retryMs * 2, 15_000)) {
    let started = false;
    let starting: Promise<void> | undefined;
    const waiting: RunSummary[] = [];
    const start = () => {
      starting ??= follower.start().then(
        () => {
          started = true;
          for (const run of waiting.splice(0)) follower.changed(run);
        },
        (err) => {
          starting = undefined;
          if (!signal.aborted && !isAbort(err)) follower.failed(err);
        },
      );
    };
    try {
      for await (const { run } of watchRuns(client, { filter: { pipeline }, signal, onCursor: start })) {
        retryMs = 1_000;
        if (started) follower.changed(run);
        else waiting.push(run);
      }
    } catch (err) {
      if (signal.aborted || isAbort(err)) return;
      follower.failed(err);
    }
    await new Promise((resolve) => setTimeout(resolve, retryMs));
  }
}
