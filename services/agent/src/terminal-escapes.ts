// Terminal escape sequences in a step's output: what a terminal acts on
// instead of showing. A secret printed with one in the middle
// ("S3cr3t\e[0m-V@lue") is shown whole, so the masker also looks for secrets
// in the text without them.
//
// Recognised: CSI (ESC [ or the one-character CSI, parameters, intermediates,
// a final character), OSC (ESC ] up to BEL or ESC \), and the other ESC
// sequences (intermediates and a final character). Each is bounded in length;
// anything longer is left as text.
const sequence = /\x1b\[[0-?]{0,64}[ -/]{0,8}[@-~]|\x9b[0-?]{0,64}[ -/]{0,8}[@-~]|\x1b\][^\x07\x1b]{0,2048}(?:\x07|\x1b\\)|\x1b[ -/]{0,8}[0-Z\\^-~]/g;

/** Longer than any sequence recognised. */
export const maxEscapeLength = 2 + 2048 + 2;

export type Range = [start: number, end: number];

/** Where the text's escape sequences are, in order. */
export function escapeSequences(text: string): Range[] {
  if (!text.includes("\x1b") && !text.includes("\x9b")) return [];
  return Array.from(text.matchAll(sequence), (m) => [m.index, m.index + m[0].length]);
}

/**
 * Where a sequence that may go on in the text that follows starts: the first
 * escape character near the end that starts none of `escapes` (the text's);
 * the text's length if there is none.
 */
export function unfinishedSequence(text: string, escapes: Range[]): number {
  const from = Math.max(0, text.length - maxEscapeLength);
  let k = escapes.length;
  while (k > 0 && escapes[k - 1][1] > from) k--;
  for (let at = from; at < text.length; at++) {
    if (text[at] !== "\x1b" && text[at] !== "\x9b") continue;
    while (k < escapes.length && escapes[k][1] <= at) k++;
    if (k === escapes.length || escapes[k][0] > at) return at;
  }
  return text.length;
}

export interface VisibleText {
  text: string;
  /** The index in the original text of character `i` of the visible text. */
  original(i: number): number;
}

/** The text as a terminal shows it: without `escapes`. */
export function visibleText(text: string, escapes: Range[]): VisibleText {
  const runs: { at: number; from: number }[] = []; // a run of visible text: where it is in each
  let visible = "";
  let pos = 0;
  for (const [start, end] of [...escapes, [text.length, text.length] as Range]) {
    if (start > pos) {
      runs.push({ at: visible.length, from: pos });
      visible += text.slice(pos, start);
    }
    pos = end;
  }
  return {
    text: visible,
    original(i) {
      let lo = 0;
      let hi = runs.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (runs[mid].at <= i) lo = mid;
        else hi = mid - 1;
      }
      return runs[lo].from + (i - runs[lo].at);
    },
  };
}
