// Line ends ("\n") in a log's text as printed, which the agent counts into
// its chunks' segments and the objects service reads back by.

// How many "\n" text[from, to) holds (a plain loop beats indexOf for short lines).
export function lineEnds(text: Buffer, from = 0, to = text.length): number {
  let n = 0;
  for (let i = from; i < to; i++) if (text[i] === 10) n++;
  return n;
}

// Where the text goes on after the `n`th line end from `from` (or its end).
export function afterLineEnds(text: Buffer, from: number, n: number): number {
  let pos = from;
  for (; n > 0 && pos < text.length; n--) {
    const end = text.indexOf(10, pos);
    pos = end === -1 ? text.length : end + 1;
  }
  return pos;
}
