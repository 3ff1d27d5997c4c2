// Masks a job's secret values in the lines of its log, before they reach the
// log sink. Lines arrive whole (output-text.ts passes a step's output on in
// whole lines), so a secret that the output delivered in pieces, across pipe
// reads or the sink's chunks, is whole again here. Only a line of over 4 MiB
// comes in pieces: the masker then holds back the end of each piece, as much
// as a secret could start in, and masks it with the next piece, so a secret
// cut by that split is masked too. A multi-line secret is masked line by
// line, so that the log keeps its lines: each of its lines of at least 4
// characters is a needle of its own (shorter lines such as "}" would mask
// far too much). The common encodings a step
// might print by accident, standard base64 of the UTF-8 bytes and
// encodeURIComponent, are masked as well.
//
// Needles are looked for in the text as printed and in the text a terminal
// shows, without its escape sequences (terminal-escapes.ts): a secret with a
// colour change in the middle is shown whole. What matches there is masked in
// the text as printed, keeping the escape sequences inside it, so colours
// survive (a sequence that itself holds a match is masked with it).
//
// Every occurrence of every needle is found (overlapping ones too) and the
// union of those ranges is replaced, each stretch by one "***". So a secret
// containing another is masked whole, and two secrets that overlap in a line
// leave no piece of either behind; replacing one needle after another could
// leave such a piece, or find a needle in text a "***" made.
//
// Secrets shorter than 3 characters are masked too, since someone chose them
// as secrets, but they mask a lot: a one-letter secret masks that letter
// everywhere in the log.
import { escapeSequences, unfinishedSequence, visibleText, type Range } from "./terminal-escapes.ts";

export interface SecretMasker {
  /** The text (a line, a step's name) with every secret masked. */
  (text: string): string;
  /**
   * For a step's output: takes its lines, and the pieces of a line too long
   * to come whole (`continues`: more of the line follows), and passes on
   * their masked text (a line's pieces may be cut elsewhere than they came).
   */
  lines(onText: (text: string) => void): (text: string, continues?: boolean) => void;
  /** Whether there is anything to mask (without, text may pass as it is). */
  readonly needed: boolean;
}

// What is held back of a line in pieces is at most this (it holds the
// longest needle, about 192 Ki characters for a 64 KiB secret, and the escape
// sequences between its characters, unless there are very many of them).
const maxHeld = 1024 * 1024;

export function createSecretMasker(values: string[]): SecretMasker {
  const needles = new Set<string>();
  for (const value of values) {
    if (value === "") continue;
    // Its lines, however a step ends them: \r\n, \n or \r.
    const lines = value.split(/\r\n|\n|\r/);
    // A value of several lines is masked line by line (below): masked
    // whole, it would take the line ends inside it along.
    if (lines.length === 1) needles.add(value);
    needles.add(Buffer.from(value, "utf8").toString("base64"));
    const url = urlEncoded(value);
    if (url !== undefined) needles.add(url);
    if (lines.length > 1) for (const part of lines) if (part.length >= 4) needles.add(part);
  }
  // Longest first: not needed for correctness (ranges are merged), but the
  // common case of one secret containing another is then one range.
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  const longest = ordered[0]?.length ?? 0;

  const mask = (text: string) => (ordered.length === 0 ? text : render(text, masking(text, ordered, 0), text.length));
  const lines = (onText: (text: string) => void) => {
    if (ordered.length === 0) return (text: string) => onText(text);
    let held = ""; // the end of the last piece, not yet passed on
    let forced = 0; // how much of `held` continues a masked stretch
    return (piece: string, continues = false) => {
      const text = held + piece;
      const found = masking(text, ordered, forced);
      const cut = continues ? cutOf(text, longest, found.escapes) : text.length;
      if (cut === 0) {
        held = text; // nothing to pass on yet
        return;
      }
      const stretch = found.stretches.find(([start, end]) => start < cut && end > cut);
      // A stretch masked up to the cut goes on being masked, without a second "***".
      const out = render(text, found, cut, forced > 0);
      forced = stretch ? stretch[1] - cut : 0;
      held = text.slice(cut);
      if (out !== "" || !continues) onText(out);
    };
  };
  return Object.assign(mask, { lines, needed: ordered.length > 0 });
}

interface Masking {
  stretches: Range[]; // to replace by "***", in order, apart
  kept: Range[]; // escape sequences inside them that stay
  escapes: Range[];
}

// The stretches of `text` to mask: `forced` characters at its start (the
// rest of a stretch), and every needle in the text and in the text without
// escape sequences.
function masking(text: string, needles: string[], forced: number): Masking {
  const printed = occurrences(text, needles);
  const escapes = escapeSequences(text);
  const shown: Range[] = forced > 0 ? [[0, forced]] : [];
  if (escapes.length === 0) return { stretches: merged([...printed, ...shown]), kept: [], escapes };
  const visible = visibleText(text, escapes);
  for (const [start, end] of occurrences(visible.text, needles)) shown.push([visible.original(start), visible.original(end - 1) + 1]);
  const stretches = merged([...printed, ...shown]);
  const matchedAsPrinted = merged(printed);
  const kept = escapes.filter(([start, end]) => {
    const stretch = stretches[lastStartingBefore(stretches, end)];
    const printedMatch = matchedAsPrinted[lastStartingBefore(matchedAsPrinted, end)];
    return stretch !== undefined && stretch[0] <= start && stretch[1] >= end && !(printedMatch && printedMatch[1] > start);
  });
  return { stretches, kept, escapes };
}

// `text` up to `end`, each stretch (as far as it is before `end`) replaced by
// "***" (but the first, when `continued`) and the escape sequences kept inside it.
function render(text: string, { stretches, kept }: Masking, end: number, continued = false): string {
  let out = "";
  let from = 0;
  let k = 0;
  for (const [start, stop] of stretches) {
    if (start >= end) break;
    out += text.slice(from, start) + (continued && start === 0 ? "" : "***");
    from = Math.min(stop, end);
    for (; k < kept.length && kept[k][0] < from; k++) if (kept[k][0] >= start && kept[k][1] <= from) out += text.slice(kept[k][0], kept[k][1]);
  }
  return out + text.slice(from, end);
}

// Where to cut a piece of a line that goes on, so that a sequence that may be
// cut off, and before it everything a needle could start in (in the text as
// printed and as shown), are held back for the next piece.
function cutOf(text: string, longest: number, escapes: Range[]): number {
  const end = unfinishedSequence(text, escapes);
  let cut = end - (longest - 1);
  const whole = escapes.filter(([, stop]) => stop <= end);
  if (whole.length > 0) {
    const visible = visibleText(text.slice(0, end), whole);
    const from = visible.text.length - (longest - 1);
    cut = Math.min(cut, from <= 0 ? 0 : visible.original(from));
  }
  cut = Math.max(cut, text.length - maxHeld, 0);
  const code = text.charCodeAt(cut - 1);
  return cut > 0 && code >= 0xd800 && code <= 0xdbff ? cut - 1 : cut;
}

/** Every occurrence of every needle in `text`, overlapping ones too. */
function occurrences(text: string, needles: string[]): Range[] {
  const found: Range[] = [];
  for (const needle of needles) {
    for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + 1)) found.push([at, at + needle.length]);
  }
  return found;
}

/** Sorted, overlapping ranges joined. */
function merged(ranges: Range[]): Range[] {
  ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const out: Range[] = [];
  for (const [start, end] of ranges) {
    const last = out[out.length - 1];
    if (last && start < last[1]) last[1] = Math.max(last[1], end);
    else out.push([start, end]);
  }
  return out;
}

/** The index of the last range starting before `pos`, or -1. */
function lastStartingBefore(ranges: Range[], pos: number): number {
  let lo = -1;
  let hi = ranges.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ranges[mid][0] < pos) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** encodeURIComponent(value), or undefined for a string it cannot encode (a lone surrogate). */
function urlEncoded(value: string): string | undefined {
  try {
    return encodeURIComponent(value);
  } catch {
    return undefined;
  }
}
