import { Code, ConnectError } from "@connectrpc/connect";
import type { LogSegment } from "@otto/gen/v1/log_store_service_pb";
import { encodeSegments, type EncodedSegments } from "./log-segments.ts";
import { compressLogText, maxLogChunkBytes as maxChunkBytes } from "@otto/kit/log-compression";
import { lineEnds } from "@otto/kit/line-ends";

// A log chunk as the objects service keeps it: its text compressed with
// zstd, its size and line ends, and its segments.
export interface StoredChunk extends EncodedSegments {
  zstd: Buffer;
  bytes: number;
  lines: number;
  // Whether its text ends at a line's end (else the line goes on in the next chunk).
  endsLine: boolean;
}

// What an agent sends (text as it is, or already compressed, with the
// segments it printed) made into a chunk to store, or refused with why. A
// compressed chunk is not decompressed here: its frame says its size, and
// its segments its line ends.
export async function storedChunk(chunk: {
  text: string;
  zstd: Uint8Array;
  segments: LogSegment[];
  continuesLine?: boolean;
}): Promise<StoredChunk> {
  if (chunk.zstd.length > 0 && chunk.text !== "") throw new ConnectError("a log chunk is either text or zstd, not both", Code.InvalidArgument);
  let zstd: Buffer;
  let bytes: number;
  let endsLine: boolean;
  let text: Buffer | undefined;
  if (chunk.zstd.length > 0) {
    zstd = Buffer.from(chunk.zstd.buffer, chunk.zstd.byteOffset, chunk.zstd.length);
    bytes = zstdContentSize(zstd);
    endsLine = !chunk.continuesLine;
  } else {
    text = Buffer.from(chunk.text);
    bytes = text.length;
    endsLine = bytes === 0 || text[bytes - 1] === 10;
    zstd = bytes <= maxChunkBytes ? await compressLogText(text) : Buffer.alloc(0);
  }
  if (bytes > maxChunkBytes) throw new ConnectError(`log chunk is ${bytes} bytes; at most ${maxChunkBytes} allowed`, Code.ResourceExhausted);
  const segments =
    chunk.segments.length > 0
      ? chunk.segments.map((s) => ({ step: s.step, timeMs: Number(s.timeMs), bytes: Number(s.bytes), lines: Number(s.lines) }))
      : [{ step: "", timeMs: Date.now(), bytes, lines: text ? lineEnds(text) : 0 }];
  const segmentBytes = segments.reduce((sum, s) => sum + s.bytes, 0);
  if (segmentBytes !== bytes) {
    throw new ConnectError(`the log chunk's segments add up to ${segmentBytes} bytes, its text has ${bytes}`, Code.InvalidArgument);
  }
  // Segments made here hold what they say; given ones with text are checked.
  if (text && chunk.segments.length > 0) {
    let at = 0;
    for (const [i, segment] of segments.entries()) {
      if (lineEnds(text, at, at + segment.bytes) !== segment.lines) {
        throw new ConnectError(`the log chunk's segment ${i + 1} does not hold the ${segment.lines} line ends it says`, Code.InvalidArgument);
      }
      at += segment.bytes;
    }
  }
  const lines = segments.reduce((sum, s) => sum + s.lines, 0);
  return { zstd, bytes, lines, endsLine, ...encodeSegments(segments) };
}

// The size a zstd frame says its content has (its frame header must say).
export function zstdContentSize(frame: Buffer): number {
  const invalid = (why: string) => new ConnectError(`log chunk is not a zstd frame that states its size: ${why}`, Code.InvalidArgument);
  if (frame.length < 6 || frame.readUInt32LE(0) !== 0xfd2fb528) throw invalid("no zstd magic number");
  const descriptor = frame[4]!;
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]!;
  const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][sizeFlag]!;
  if (sizeBytes === 0) throw invalid("its header has no content size");
  const at = 5 + (singleSegment ? 0 : 1) + dictionaryBytes;
  if (frame.length < at + sizeBytes) throw invalid("its header is cut short");
  if (sizeBytes === 1) return frame[at]!;
  if (sizeBytes === 2) return frame.readUInt16LE(at) + 256;
  if (sizeBytes === 4) return frame.readUInt32LE(at);
  const size = frame.readBigUInt64LE(at);
  return size > BigInt(maxChunkBytes) ? maxChunkBytes + 1 : Number(size);
}
