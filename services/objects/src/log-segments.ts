// Who printed each stretch of a log chunk and when, kept beside the chunk's
// text instead of on every line: each segment is four unsigned varints (its
// step's place in the chunk's list of steps, its time in milliseconds after
// the chunk's first, its bytes, its line ends), a few bytes however many
// lines it holds.
export interface Segment {
  step: string;
  timeMs: number;
  bytes: number;
  lines: number;
}

export interface EncodedSegments {
  steps: string[];
  firstMs: number;
  index: Buffer;
}

export function encodeSegments(segments: Segment[]): EncodedSegments {
  const steps: string[] = [];
  const places = new Map<string, number>();
  const firstMs = segments.length > 0 ? Math.min(...segments.map((s) => s.timeMs)) : 0;
  const out: number[] = [];
  for (const segment of segments) {
    let place = places.get(segment.step);
    if (place === undefined) {
      place = steps.push(segment.step) - 1;
      places.set(segment.step, place);
    }
    for (const n of [place, segment.timeMs - firstMs, segment.bytes, segment.lines]) pushVarint(out, n);
  }
  return { steps, firstMs, index: Buffer.from(out) };
}

export function decodeSegments({ steps, firstMs, index }: EncodedSegments): Segment[] {
  const segments: Segment[] = [];
  const at = { pos: 0 };
  while (at.pos < index.length) {
    const place = readVarint(index, at);
    const timeMs = firstMs + readVarint(index, at);
    const bytes = readVarint(index, at);
    const lines = readVarint(index, at);
    segments.push({ step: steps[place] ?? "", timeMs, bytes, lines });
  }
  return segments;
}

function pushVarint(out: number[], n: number) {
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}

function readVarint(bytes: Buffer, at: { pos: number }): number {
  let n = 0;
  for (let scale = 1; at.pos < bytes.length; scale *= 0x80) {
    const byte = bytes[at.pos++]!;
    n += (byte & 0x7f) * scale;
    if (byte < 0x80) return n;
  }
  throw new Error("a log segment index ends inside a number");
}
