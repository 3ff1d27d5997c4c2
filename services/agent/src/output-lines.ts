import { StringDecoder } from "node:string_decoder";
import { pieces } from "./text-pieces.ts";

// Splits a step's output bytes into lines as they come: a character cut
// between two pieces is joined, `\r\n` ends a line as `\n` does, and a lone
// `\r` (a progress bar redrawing itself) does too. A line is passed on whole
// (so the secret masker sees it whole) unless it grows past `maxLineLength`,
// which bounds the memory one step's output can take: then it goes on in
// pieces of that length, and a secret cut by such a piece is not masked.
export const maxLineLength = 4 * 1024 * 1024;

export class OutputLines {
  readonly #decoder = new StringDecoder("utf8");
  #partial = "";

  push(bytes: Buffer, onLine: (line: string) => void): void {
    const lines = (this.#partial + this.#decoder.write(bytes)).split("\n");
    this.#partial = lines.pop()!;
    for (const line of lines) {
      if (line.length <= maxLineLength) emit(line, onLine);
      else for (const piece of pieces(line, maxLineLength)) emit(piece, onLine);
    }
    // A line still arriving goes on in pieces once it outgrows the bound.
    if (this.#partial.length > maxLineLength) {
      const whole = [...pieces(this.#partial, maxLineLength)];
      this.#partial = whole.pop()!;
      for (const piece of whole) emit(piece, onLine);
    }
  }

  // What is left after the last newline, as a line of its own.
  end(onLine: (line: string) => void): void {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = "";
    if (rest.length > 0) emit(rest, onLine);
  }
}

function emit(line: string, onLine: (line: string) => void) {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  if (!text.includes("\r")) return onLine(text);
  for (const part of text.split("\r")) onLine(part);
}
