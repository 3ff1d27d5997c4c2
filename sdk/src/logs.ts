import type { OttoClient } from "./client.ts";

export interface FollowLogsOptions {
  // Keep reading while the job runs (default true).
  follow?: boolean;
  signal?: AbortSignal;
}

// A job's log as an async iterator of whole lines: live while the job runs,
// ending when it is final.
export async function* followLogs(
  client: OttoClient,
  runId: string,
  job: string,
  options: FollowLogsOptions = {},
): AsyncGenerator<string> {
  let partial = "";
  const stream = client.logs.readLog(
    { runId, job, follow: options.follow ?? true },
    { signal: options.signal, timeoutMs: 0 },
  );
  for await (const chunk of stream) {
    const lines = (partial + chunk.text).split("\n");
    partial = lines.pop()!;
    yield* lines;
  }
  if (partial !== "") yield partial;
}
