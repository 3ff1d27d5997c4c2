import type { OttoClient } from "./client.ts";

export interface FollowLogsOptions {
  // Keep reading while the job runs (default true).
  follow?: boolean;
  // Which attempt's log (from 1); by default the latest, and when following,
  // the attempts a retry adds, each after a "--- attempt N ---" line.
  attempt?: number;
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
  let attempt = 0;
  const stream = client.logs.readLog(
    { runId, job, follow: options.follow ?? true, attempt: options.attempt ?? 0 },
    { signal: options.signal, timeoutMs: 0 },
  );
  for await (const chunk of stream) {
    if (chunk.attempt !== attempt) {
      if (partial !== "") yield partial;
      partial = "";
      if (attempt !== 0) yield `--- attempt ${chunk.attempt} ---`;
      attempt = chunk.attempt;
    }
    const lines = (partial + chunk.text).split("\n");
    partial = lines.pop()!;
    yield* lines;
  }
  if (partial !== "") yield partial;
}
