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
  #partial: Buffer | undefined;

  push(bytes: Buffer, onText: OnText): void {
    const firstEnd = bytes.indexOf(10);
    if (firstEnd === -1) return this.#hold(bytes, onText);
    if ((this.#partial?.length ?? 0) + firstEnd > maxLineLength) {
      this.#hold(bytes.subarray(0, firstEnd), onText);
      bytes = bytes.subarray(firstEnd);
    }
    const lastEnd = bytes.lastIndexOf(10);
    const whole = bytes.subarray(0, lastEnd + 1);
    onText(this.#partial ? Buffer.concat([this.#partial, whole]) : whole, false);
    this.#partial = lastEnd + 1 < bytes.length ? Buffer.from(bytes.subarray(lastEnd + 1)) : undefined;
  }

  // Keeps the start of a line, passing on pieces of it once it is too long.
  #hold(bytes: Buffer, onText: OnText) {
    let partial = this.#partial ? Buffer.concat([this.#partial, bytes]) : Buffer.from(bytes);
    while (partial.length > maxLineLength) {
      const cut = characterStart(partial, maxLineLength);
      onText(partial.subarray(0, cut), true);
      partial = Buffer.from(partial.subarray(cut));
    }
    this.#partial = partial;
  }

  // What is left after the last newline, as a line of its own.
  end(onText: OnText): void {
    const rest = this.#partial;
    this.#partial = undefined;
    if (rest && rest.length > 0) onText(Buffer.concat([rest, newline]), false);
  }
}

const newline = Buffer.from("\n");

// Where the UTF-8 character at or before `at` starts.
export function characterStart(bytes: Buffer, at: number): number {
  let cut = at;
  while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return cut === 0 ? at : cut;
}
