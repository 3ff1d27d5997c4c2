import type { Segment } from "./log-segments.ts";

// A chunk of a log as read back: its text as printed and who printed which
// part of it when (each segment with where it starts in the text).
export interface LoadedChunk {
  seq: number;
  startOffset: number;
  // Line ends before the chunk: its first byte is on line startLine + 1.
  startLine: number;
  // Whether its first byte starts a line (else it goes on with the last chunk's).
  startsLine: boolean;
  text: Buffer;
  segments: PlacedSegment[];
}

export interface PlacedSegment extends Segment {
  start: number;
}

export function placed(segments: Segment[]): PlacedSegment[] {
  let start = 0;
  return segments.map((segment) => {
    const at = { ...segment, start };
    start += segment.bytes;
    return at;
  });
}

// The chunk's text from `from` to `to` as ReadLog shows it by default: each
// line as "<time> <step> | <text>", the time and step of the segment it is
// in; with `raw`, as printed. A chunk without segments (written before logs
// had them) already has a time and step on each line.
export function renderText(chunk: LoadedChunk, from: number, to: number, raw: boolean): string {
  if (raw || chunk.segments.length === 0) return chunk.text.toString("utf8", from, to);
  let out = "";
  let atLineStart = from === 0 ? chunk.startsLine : chunk.text[from - 1] === 10;
  for (const segment of chunk.segments) {
    const start = Math.max(from, segment.start);
    const end = Math.min(to, segment.start + segment.bytes);
    if (start >= end) continue;
    out += renderLines(chunk.text.toString("utf8", start, end), prefixOf(segment), atLineStart);
    atLineStart = chunk.text[end - 1] === 10;
  }
  return out;
}

function renderLines(text: string, prefix: string, atLineStart: boolean): string {
  const lines = text.replaceAll("\r\n", "\n");
  const ended = lines.endsWith("\n");
  const body = ended ? lines.slice(0, -1) : lines;
  return (atLineStart ? prefix : "") + body.replaceAll("\n", `\n${prefix}`) + (ended ? "\n" : "");
}

const prefixes = new WeakMap<PlacedSegment, string>();
function prefixOf(segment: PlacedSegment): string {
  let prefix = prefixes.get(segment);
  if (prefix === undefined) {
    prefix = `${new Date(segment.timeMs).toISOString()} ${segment.step} | `;
    prefixes.set(segment, prefix);
  }
  return prefix;
}
