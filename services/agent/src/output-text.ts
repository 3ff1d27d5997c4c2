// Passes a step's output bytes on as they come, in whole lines: each text
// passed on ends with "\n" (a "\r\n" or a lone "\r" stays as printed, inside
// its line), so the secret masker sees every line whole and the log's
// chunks can end at line ends. A line that grows past `maxLineLength`, which
// bounds the memory one step's output can take, goes on in pieces of that
// size (cut between characters), each passed on with `continues`, which
// tells the secret masker to look for a secret across the cut.
export const maxLineLength = 4 * 1024 * 1024;

export type OnText = (text: Buffer, continues: boolean) => void;

export class OutputText {
  // The line still arriving, in the pieces it came in.
  #partial: Buffer[] = [];
  #partialBytes = 0;

  push(bytes: Buffer, onText: OnText): void {
    const firstEnd = bytes.indexOf(10);
    if (firstEnd === -1) return this.#hold(bytes, onText);
    if (this.#partialBytes + firstEnd > maxLineLength) {
      this.#hold(bytes.subarray(0, firstEnd), onText);
      bytes = bytes.subarray(firstEnd);
      return this.push(bytes, onText);
    }
    // The line that was arriving, then the whole lines after it as they came.
    let from = 0;
    if (this.#partialBytes > 0) {
      onText(Buffer.concat([...this.#partial, bytes.subarray(0, firstEnd + 1)]), false);
      this.#partial = [];
      this.#partialBytes = 0;
      from = firstEnd + 1;
    }
    const lastEnd = bytes.lastIndexOf(10);
    if (lastEnd >= from) onText(bytes.subarray(from, lastEnd + 1), false);
    if (lastEnd + 1 < bytes.length) this.#hold(bytes.subarray(lastEnd + 1), onText);
  }

  // Keeps the start of a line, passing on pieces of it once it is too long.
  #hold(bytes: Buffer, onText: OnText) {
    this.#partial.push(bytes);
    this.#partialBytes += bytes.length;
    if (this.#partialBytes <= maxLineLength) return;
    let partial = Buffer.concat(this.#partial);
    while (partial.length > maxLineLength) {
      const cut = characterStart(partial, maxLineLength);
      onText(partial.subarray(0, cut), true);
      partial = partial.subarray(cut);
    }
    this.#partial = [partial];
    this.#partialBytes = partial.length;
  }

  // What is left after the last newline, as a line of its own.
  end(onText: OnText): void {
    const [rest, bytes] = [this.#partial, this.#partialBytes];
    this.#partial = [];
    this.#partialBytes = 0;
    if (bytes > 0) onText(Buffer.concat([...rest, newline]), false);
  }
}

const newline = Buffer.from("\n");

// Where the UTF-8 character at or before `at` starts.
export function characterStart(bytes: Buffer, at: number): number {
  let cut = at;
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return cut === 0 ? at : cut;
}
