import type { OttoClient } from "./clients.ts";

export interface ReadLogOptions {
  // Keep reading while the job runs (default true for followLogs, false for readLogLines).
  follow?: boolean;
  // Which attempt's log (from 1); by default the latest, and when following,
  // the attempts a retry adds.
  attempt?: number;
  // Start this many lines before the end, at this line (from 1), or at this
  // byte offset of the text as printed (a message's endOffset, to resume).
  tail?: number;
  line?: number;
  offset?: number;
  // At most this many lines (with `grep`, matches).
  limit?: number;
  // Only lines containing this text (or matching it, with `regex`), each
  // with `context` lines around it; searched by the server.
  grep?: string;
  regex?: boolean;
  ignoreCase?: boolean;
  context?: number;
  // The text as printed, without each line's time and step.
  raw?: boolean;
  signal?: AbortSignal;
}

export type FollowLogsOptions = ReadLogOptions;

export interface LogLine {
  attempt: number;
  // Its number in its attempt's log, from 1.
  number: number;
  text: string;
  // With `grep`: whether it matched (else it is context).
  match: boolean;
  // False when lines were left out before it (grep's "--").
  follows: boolean;
}

// A job's log as an async iterator of whole lines with their numbers.
export async function* readLogLines(client: OttoClient, runId: string, job: string, options: ReadLogOptions = {}): AsyncGenerator<LogLine> {
  const stream = client.logs.readLog(
    {
      runId,
      job,
      follow: options.follow ?? false,
      attempt: options.attempt ?? 0,
      tail: options.tail ?? 0,
      line: BigInt(options.line ?? 0),
      offset: BigInt(options.offset ?? 0),
      limit: BigInt(options.limit ?? 0),
      grep: options.grep ?? "",
      regex: options.regex ?? false,
      ignoreCase: options.ignoreCase ?? false,
      context: options.context ?? 0,
      raw: options.raw ?? false,
    },
    { signal: options.signal, timeoutMs: 0 },
  );
  // The end of the last message when it was not a line's end.
  let partial: LogLine | undefined;
  let next = { attempt: 0, number: 0 };
  for await (const chunk of stream) {
    if (chunk.deleted !== "") throw new Error(`the log of job ${job} (attempt ${chunk.attempt}): ${chunk.deleted}`);
    const first = Number(chunk.line);
    const follows = chunk.attempt === next.attempt && first === next.number;
    const matches = new Set(chunk.matchLines.map(Number));
    const texts = chunk.text.split("\n");
    if (partial && follows) texts[0] = partial.text + texts[0];
    else if (partial) yield partial;
    const rest = texts.pop()!;
    let number = first;
    for (const text of texts) {
      yield { attempt: chunk.attempt, number, text, match: matches.has(number), follows: number > first || follows };
      number++;
    }
    partial = rest === "" ? undefined : { attempt: chunk.attempt, number, text: rest, match: matches.has(number), follows: number > first || follows };
    next = { attempt: chunk.attempt, number };
  }
  if (partial) yield partial;
}

// A job's log as an async iterator of whole lines: live while the job runs,
// ending when it is final; lines of a retry's attempt come after a
// "--- attempt N ---" line.
export async function* followLogs(client: OttoClient, runId: string, job: string, options: FollowLogsOptions = {}): AsyncGenerator<string> {
  let attempt = 0;
  for await (const line of readLogLines(client, runId, job, { ...options, follow: options.follow ?? true })) {
    if (line.attempt !== attempt) {
      if (attempt !== 0) yield `--- attempt ${line.attempt} ---`;
      attempt = line.attempt;
    }
    yield line.text;
  }
}
