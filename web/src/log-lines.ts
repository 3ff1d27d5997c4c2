import { parseAnsi, type AnsiSegment } from "./ansi.ts";

// A line of a job's log as the page shows it: "<time> <step> | <text>" taken
// apart, the text's colours parsed (never HTML).
export interface LogRow {
  attempt: number;
  number: number;
  time: string;
  step: string;
  segments: AnsiSegment[];
  match: boolean;
}

const stamped = /^(\d{4}-\d\d-\d\dT[\d:.]+Z) (.*?) \| (.*)$/s;

export function logRowOf(line: { attempt: number; number: number; text: string; match: boolean }): LogRow {
  const parts = stamped.exec(line.text);
  return {
    attempt: line.attempt,
    number: line.number,
    time: parts?.[1] ?? "",
    step: parts?.[2] ?? "",
    segments: parseAnsi(parts ? parts[3] : line.text),
    match: line.match,
  };
}

// "2026-11-22T10:00:00.123Z" -> "10:00:00" in the page's time zone.
export function clockOf(time: string): string {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleTimeString([], { hour12: false });
}
