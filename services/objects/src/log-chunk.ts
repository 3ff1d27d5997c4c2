import { Code, ConnectError } from "@connectrpc/connect";
import type { LogSegment } from "../../../gen/otto/v1/log_store_service_pb.ts";
import { encodeSegments, type EncodedSegments } from "./log-segments.ts";
import { compressLogText, decompressLogText, maxLogChunkBytes as maxChunkBytes } from "../../kit/src/log-compression.ts";

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
// segments it printed) made into a chunk to store, or refused with why.
export async function storedChunk(chunk: { text: string; zstd: Uint8Array; segments: LogSegment[] }): Promise<StoredChunk> {
  if (chunk.zstd.length > 0 && chunk.text !== "") throw new ConnectError("a log chunk is either text or zstd, not both", Code.InvalidArgument);
  let zstd: Buffer;
  let text: Buffer;
  if (chunk.zstd.length > 0) {
    zstd = Buffer.from(chunk.zstd.buffer, chunk.zstd.byteOffset, chunk.zstd.length);
    const size = zstdContentSize(zstd);
    if (size > maxChunkBytes) throw tooLarge(size);
    text = await decompressLogText(zstd).catch((err) => {
      throw new ConnectError(`log chunk is not valid zstd: ${(err as Error).message}`, Code.InvalidArgument);
    });
    if (text.length !== size) throw new ConnectError(`log chunk's zstd frame says ${size} bytes but holds ${text.length}`, Code.InvalidArgument);
  } else {
    text = Buffer.from(chunk.text);
    if (text.length > maxChunkBytes) throw tooLarge(text.length);
    zstd = await compressLogText(text);
  }
  // The index must say what the text holds: every read relies on it.
  const segments =
    chunk.segments.length > 0
      ? chunk.segments.map((s) => ({ step: s.step, timeMs: Number(s.timeMs), bytes: Number(s.bytes), lines: Number(s.lines) }))
      : [{ step: "", timeMs: Date.now(), bytes: text.length, lines: lineEnds(text, 0, text.length) }];
  let at = 0;
  for (const [i, segment] of segments.entries()) {
    const found = at + segment.bytes <= text.length ? lineEnds(text, at, at + segment.bytes) : -1;
    if (found !== segment.lines) {
      throw new ConnectError(`the log chunk's segment ${i + 1} says ${segment.bytes} bytes and ${segment.lines} line ends, which its text does not hold`, Code.InvalidArgument);
    }
    at += segment.bytes;
  }
  if (at !== text.length) throw new ConnectError(`the log chunk's segments add up to ${at} bytes, its text has ${text.length}`, Code.InvalidArgument);
  const lines = segments.reduce((sum, s) => sum + s.lines, 0);
  return { zstd, bytes: text.length, lines, endsLine: text.length === 0 || text[text.length - 1] === 10, ...encodeSegments(segments) };
}

function tooLarge(bytes: number): ConnectError {
  return new ConnectError(`log chunk is ${bytes} bytes; at most ${maxChunkBytes} allowed`, Code.ResourceExhausted);
}

// How many "\n" text[from, to) holds (a plain loop beats indexOf for short lines).
export function lineEnds(text: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (text[i] === 10) n++;
  return n;
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
