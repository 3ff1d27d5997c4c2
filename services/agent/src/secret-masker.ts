// Masks a job's secret values in the lines of its log, before they reach the
// log sink. Lines arrive whole (output-lines.ts splits a step's output at
// line ends; only a line of over 4 MiB comes in pieces), so a secret that the
// output delivered in pieces, across pipe reads or the sink's chunks, is
// whole again here. Because output
// arrives one line at a time, a multi-line secret is masked line by line too:
// each of its lines of at least 4 characters is a needle of its own (shorter
// lines such as "}" would mask far too much). The common encodings a step
// might print by accident, standard base64 of the UTF-8 bytes and
// encodeURIComponent, are masked as well.
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
export function createSecretMasker(values: string[]): (line: string) => string {
  const needles = new Set<string>();
  for (const value of values) {
    if (value === "") continue;
    needles.add(value);
    needles.add(Buffer.from(value, "utf8").toString("base64"));
    const url = urlEncoded(value);
    if (url !== undefined) needles.add(url);
    // The line ends output-lines.ts splits at: \r\n, \n and \r.
    const lines = value.split(/\r\n|\n|\r/);
    if (lines.length > 1) for (const part of lines) if (part.length >= 4) needles.add(part);
  }
  // Longest first: not needed for correctness (ranges are merged), but the
  // common case of one secret containing another is then one range.
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  if (ordered.length === 0) return (line) => line;
  return (line) => {
    const ranges: Array<[number, number]> = [];
    for (const needle of ordered) {
      for (let at = line.indexOf(needle); at !== -1; at = line.indexOf(needle, at + 1)) ranges.push([at, at + needle.length]);
    }
    if (ranges.length === 0) return line;
    ranges.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
    let out = "";
    let from = 0; // first character of line not yet copied or masked
    let start = ranges[0][0];
    let end = ranges[0][1];
    for (const [s, e] of ranges) {
      if (s < end) {
        if (e > end) end = e;
        continue;
      }
      out += line.slice(from, start) + "***";
      from = end;
      start = s;
      end = e;
    }
    return out + line.slice(from, start) + "***" + line.slice(end);
  };
}

/** encodeURIComponent(value), or undefined for a string it cannot encode (a lone surrogate). */
function urlEncoded(value: string): string | undefined {
  try {
    return encodeURIComponent(value);
  } catch {
    return undefined;
  }
}
