import { Code, ConnectError } from "@connectrpc/connect";
import { afterLineEnds, lineEnds } from "@otto/kit/line-ends";
import type { ChunkEvent } from "./log-reader.ts";
import type { LoadedChunk } from "./log-render.ts";
import type { LineMatcher } from "./regex-search.ts";
import { deletedText, textOf, type LogText } from "./log-view.ts";

export interface SearchOptions {
  // Where the search's pattern first matches on each line of a text.
  matcher: LineMatcher;
  // Lines shown before and after each matching line.
  context: number;
  // Matching lines at most (0: all).
  limit: number;
  raw: boolean;
}

// What ReadLog's grep looks for: the text itself, or a JavaScript regular
// expression (`^` and `$` match at each line's start and end).
export function searchPattern(grep: string, regex: boolean, ignoreCase: boolean): RegExp {
  const flags = `g${regex ? "m" : ""}${ignoreCase ? "i" : ""}`;
  if (!regex) return new RegExp(grep.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), flags);
  try {
    return new RegExp(grep, flags);
  } catch (err) {
    throw new ConnectError(`grep is not a valid regular expression: ${(err as Error).message}`, Code.InvalidArgument);
  }
}

// A stretch of a chunk's text.
interface Piece {
  chunk: LoadedChunk;
  from: number;
  to: number;
}

// Lines shown together: matches and their context, touching or overlapping.
interface Group {
  firstLine: number;
  // The line after the group's last (lines counted from 0).
  endLine: number;
  // The last line it should show once the text has it.
  wanted: number;
  pieces: Piece[];
  matches: number[];
}

// The lines of a read that match, with their context, in groups: one
// message per group of lines next to each other (grep's "--" between them).
// Searched a chunk at a time, on the server; a group waiting for the lines
// after it is sent when the read has caught up with a live log.
export async function* searchLog(events: AsyncIterable<ChunkEvent>, options: SearchOptions): AsyncGenerator<LogText> {
  const { matcher, context, raw } = options;
  let matchesLeft = options.limit > 0 ? options.limit : Infinity;
  let group: Group | undefined;
  let previous: LoadedChunk | undefined;
  // Lines before this one were sent in a group already, or are before the read's start.
  let shownUpTo: number | undefined;
  const flush = function* (): Generator<LogText> {
    if (!group) return;
    const first = group.pieces[0]!;
    const last = group.pieces[group.pieces.length - 1]!;
    yield {
      text: group.pieces.map((p) => textOf(p.chunk, p.from, p.to, 0, [], raw).text).join(""),
      offset: first.chunk.startOffset + first.from,
      endOffset: last.chunk.startOffset + last.to,
      line: group.firstLine + 1,
      matchLines: group.matches,
      deleted: "",
    };
    shownUpTo = group.endLine;
    group = undefined;
  };
  for await (const event of events) {
    if (event.kind === "deleted") return yield deletedText(event.why);
    if (event.kind === "caught-up") {
      yield* flush();
      continue;
    }
    const { chunk, from } = event;
    const { text } = chunk;
    shownUpTo ??= event.fromLine;
    if (group && group.endLine <= group.wanted) extend(group, group.wanted, chunk, from);
    if (matchesLeft === 0) {
      if (!group || group.endLine > group.wanted) return yield* flush();
      previous = chunk;
      continue;
    }
    const str = text.toString("utf8", from);
    const ascii = str.length === text.length - from;
    let mapped = { char: 0, byte: from };
    const byteAt = (char: number) => {
      if (ascii) return from + char;
      mapped = { char, byte: mapped.byte + Buffer.byteLength(str.slice(mapped.char, char)) };
      return mapped.byte;
    };
    let line = event.fromLine;
    let linePos = from;
    for (const index of await matcher(str)) {
      if (matchesLeft === 0) break;
      const at = byteAt(index);
      const lineStart = Math.max(from, at === 0 ? 0 : text.lastIndexOf(10, at - 1) + 1);
      line += lineEnds(text, linePos, lineStart);
      linePos = lineStart;
      if (group && line - context <= group.endLine) {
        group.wanted = line + context;
        extend(group, line + context, chunk, from);
      } else {
        yield* flush();
        const first = Math.max(line - context, shownUpTo);
        group = { firstLine: first, endLine: line, wanted: line + context, pieces: before(chunk, from, lineStart, line - first, previous), matches: [] };
        group.firstLine = group.endLine - linesIn(group.pieces);
        extend(group, line + context, chunk, from);
      }
      group.matches.push(line + 1);
      matchesLeft--;
    }
    previous = chunk;
    if (matchesLeft === 0 && group && group.endLine > group.wanted) return yield* flush();
  }
  yield* flush();
}

// Pieces holding up to `lines` lines before the line starting at
// `lineStart` (in this chunk, then the one before it if the read had it).
function before(chunk: LoadedChunk, from: number, lineStart: number, lines: number, previous: LoadedChunk | undefined): Piece[] {
  let pos = lineStart;
  for (; lines > 0 && pos > from; lines--) pos = pos < 2 ? 0 : chunk.text.lastIndexOf(10, pos - 2) + 1;
  const here = { chunk, from: pos, to: lineStart };
  if (lines === 0 || pos > 0 || !previous || previous.seq !== chunk.seq - 1) return [here];
  let back = previous.text.length;
  for (; lines > 0 && back > 0; lines--) back = back < 2 ? 0 : previous.text.lastIndexOf(10, back - 2) + 1;
  return [{ chunk: previous, from: back, to: previous.text.length }, here];
}

function linesIn(pieces: Piece[]): number {
  return pieces.reduce((n, p) => n + lineEnds(p.chunk.text, p.from, p.to), 0);
}

// Grows the group to show line `target`, as far as `chunk` (read from
// `from`) goes.
function extend(group: Group, target: number, chunk: LoadedChunk, from: number) {
  let last = group.pieces[group.pieces.length - 1]!;
  if (last.chunk !== chunk) {
    if (last.to < last.chunk.text.length) {
      const to = afterLineEnds(last.chunk.text, last.to, target + 1 - group.endLine);
      group.endLine += lineEnds(last.chunk.text, last.to, to);
      last.to = to;
      if (last.to < last.chunk.text.length) return;
    }
    last = { chunk, from, to: from };
    group.pieces.push(last);
  }
  const want = target + 1 - group.endLine;
  if (want <= 0) return;
  const to = afterLineEnds(chunk.text, last.to, want);
  group.endLine += lineEnds(chunk.text, last.to, to);
  last.to = to;
}
