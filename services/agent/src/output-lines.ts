import { StringDecoder } from "node:string_decoder";
import { pieces } from "./text-pieces.ts";

// Splits a step's output bytes into lines as they come: a character cut
// between two pieces is joined, `\r\n` ends a line as `\n` does, and a lone
// `\r` (a progress bar redrawing itself) does too. A line is passed on whole
// (so the secret masker sees it whole) unless it grows past `maxLineLength`,
// which bounds the memory one step's output can take: then it goes on in
// pieces of that length, each but the last passed on with `continues`, which
// tells the secret masker to look for a secret across the cut.
export const maxLineLength = 4 * 1024 * 1024;

export type OnLine = (line: string, continues: boolean) => void;

export class OutputLines {
  readonly #decoder = new StringDecoder("utf8");
  #partial = "";

  push(bytes: Buffer, onLine: OnLine): void {
    const lines = (this.#partial + this.#decoder.write(bytes)).split("\n");
    this.#partial = lines.pop()!;
    for (const line of lines) {
      if (line.length <= maxLineLength) emit(line, false, onLine);
      else emitPieces([...pieces(line, maxLineLength)], false, onLine);
    }
    // A line still arriving goes on in pieces once it outgrows the bound.
    if (this.#partial.length > maxLineLength) {
      const whole = [...pieces(this.#partial, maxLineLength)];
      this.#partial = whole.pop()!;
      emitPieces(whole, true, onLine);
    }
  }

  // What is left after the last newline, as a line of its own.
  end(onLine: OnLine): void {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = "";
    if (rest.length > 0) emit(rest, false, onLine);
  }
}

// A line's pieces; `continues`: the line goes on after the last of them.
function emitPieces(line: string[], continues: boolean, onLine: OnLine) {
  line.forEach((piece, i) => emit(piece, continues || i < line.length - 1, onLine));
}

// A \r ends a line too; a piece that continues ends with what goes on.
function emit(text: string, continues: boolean, onLine: OnLine) {
  if (!continues && text.endsWith("\r")) text = text.slice(0, -1);
  if (!text.includes("\r")) return onLine(text, continues);
  const parts = text.split("\r");
  const last = parts.pop()!;
  for (const part of parts) onLine(part, false);
  if (!continues || last !== "") onLine(last, continues);
}
