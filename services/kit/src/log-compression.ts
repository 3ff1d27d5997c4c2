import { promisify } from "node:util";
import { constants, zstdCompress, zstdDecompressSync } from "node:zlib";

// A log chunk's text is at most this many bytes.
export const maxLogChunkBytes = 1024 * 1024;

const compress = promisify(zstdCompress);

// A log chunk's text as it travels and is stored: one zstd frame that
// states its size, at the fastest level (logs compress well even so).
export function compressLogText(text: Buffer): Promise<Buffer> {
  return compress(text, { pledgedSrcSize: text.length, params: { [constants.ZSTD_c_compressionLevel]: 1 } });
}

// A chunk's text (never more than a chunk may hold, whatever its frame
// says), here and now: a chunk takes well under a millisecond, less than a
// trip to the thread pool and back.
export function decompressLogText(zstd: Buffer): Buffer {
  return zstdDecompressSync(zstd, { maxOutputLength: maxLogChunkBytes });
}
