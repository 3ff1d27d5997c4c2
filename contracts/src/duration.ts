// Durations as written in pipeline files: one or more <number><unit> parts,
// e.g. "90s", "1h30m", "1.5h", "500ms".

export type DurationResult = { ok: true; seconds: number; nanos: number } | { ok: false; message: string };

const NANOS_PER_UNIT = new Map<string, bigint>([
  ["h", 3_600_000_000_000n],
  ["m", 60_000_000_000n],
  ["s", 1_000_000_000n],
  ["ms", 1_000_000n],
]);
const NANOS_PER_SECOND = 1_000_000_000n;
const MAX_SECONDS = 315_576_000_000n; // the limit of google.protobuf.Duration, about 10,000 years
const EXAMPLE = 'expected a number followed by a unit, e.g. "90s" or "1h30m"';

export function parseDuration(text: string): DurationResult {
  const bad = (why: string): DurationResult => ({ ok: false, message: `bad duration ${JSON.stringify(text)}: ${why}` });
  const fail = (why: string) => bad(`${why} (units: ms, s, m, h)`);
  if (/^\d+(\.\d+)?$/.test(text)) return fail(`add a unit, e.g. "${text}s"`);
  if (text === "") return fail(EXAMPLE);

  const part = /(\d+)(?:\.(\d+))?([^\d.]*)/y;
  let nanos = 0n;
  while (part.lastIndex < text.length) {
    const match = part.exec(text);
    if (!match) return fail(EXAMPLE);
    const [number, whole, fraction = "", unit] = match;
    const perUnit = NANOS_PER_UNIT.get(unit);
    if (perUnit === undefined) return fail(unit ? `unknown unit "${unit}"` : `add a unit after "${number}"`);
    // Exact decimal arithmetic; anything below a nanosecond is dropped.
    nanos += BigInt(whole) * perUnit + (BigInt(fraction || "0") * perUnit) / 10n ** BigInt(fraction.length);
  }
  if (nanos / NANOS_PER_SECOND > MAX_SECONDS) return bad("too long, the limit is 10000 years");
  return { ok: true, seconds: Number(nanos / NANOS_PER_SECOND), nanos: Number(nanos % NANOS_PER_SECOND) };
}

// Seconds as a pipeline would write them: "24h", "30m", "1.5s".
export function formatDuration(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60}m`;
  return `${+seconds.toFixed(3)}s`;
}
