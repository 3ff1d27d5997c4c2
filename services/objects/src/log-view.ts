import { afterLineEnds, lineEnds } from "@otto/kit/line-ends";
import type { ChunkEvent } from "./log-reader.ts";
import { renderText, type LoadedChunk } from "./log-render.ts";

// One message of a ReadLog answer.
export interface LogText {
  text: string;
  offset: number;
  endOffset: number;
  // From 1.
  line: number;
  matchLines: number[];
  deleted: string;
}

// Raw text per message at most (rendered, a line of a few bytes grows by
// its time and step).
const sliceBytes = 64 * 1024;

// The lines a read meets, at most `limit` of them (0: all), in messages of
// whole lines.
export async function* logLines(events: AsyncIterable<ChunkEvent>, options: { limit: number; raw: boolean }): AsyncGenerator<LogText> {
  let remaining = options.limit > 0 ? options.limit : Infinity;
  for await (const event of events) {
    if (event.kind === "deleted") return yield deletedText(event.why);
    if (event.kind !== "chunk") continue;
    const { chunk } = event;
    const { text } = chunk;
    let line = event.fromLine;
    for (let pos = event.from; pos < text.length; ) {
      let end = Math.min(text.length, pos + sliceBytes);
      if (end < text.length) {
        const lastEnd = text.lastIndexOf(10, end - 1);
        if (lastEnd >= pos) end = lastEnd + 1;
      }
      let lines = lineEnds(text, pos, end);
      if (lines >= remaining) {
        end = afterLineEnds(text, pos, remaining);
        lines = remaining;
      }
      yield textOf(chunk, pos, end, line, [], options.raw);
      line += lines;
      remaining -= lines;
      pos = end;
      if (remaining === 0) return;
    }
  }
}

export function textOf(chunk: LoadedChunk, from: number, to: number, line: number, matchLines: number[], raw: boolean): LogText {
  return {
    text: renderText(chunk, from, to, raw),
    offset: chunk.startOffset + from,
    endOffset: chunk.startOffset + to,
    line: line + 1,
    matchLines,
    deleted: "",
  };
}

export function deletedText(why: string): LogText {
  return { text: "", offset: 0, endOffset: 0, line: 0, matchLines: [], deleted: why };
}
