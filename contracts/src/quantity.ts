// Memory quantities as written in pipeline files: a whole number of bytes, or
// a number with a unit, e.g. "512Mi", "1.5Gi", "2G".

export type QuantityResult = { ok: true; bytes: bigint } | { ok: false; message: string };

const BYTES_PER_UNIT = new Map<string, bigint>([
  ["Ki", 1024n],
  ["Mi", 1024n ** 2n],
  ["Gi", 1024n ** 3n],
  ["Ti", 1024n ** 4n],
  ["K", 1000n],
  ["k", 1000n],
  ["M", 1000n ** 2n],
  ["G", 1000n ** 3n],
  ["T", 1000n ** 4n],
]);
const UNITS = "(units: Ki, Mi, Gi, Ti, K, M, G, T)";
const MAX_BYTES = 2n ** 63n - 1n; // the limit of int64 memory_bytes

export function parseQuantity(text: string): QuantityResult {
  const bad = (why: string): QuantityResult => ({ ok: false, message: `bad memory quantity ${JSON.stringify(text)}: ${why}` });
  if (/^-\d/.test(text)) return bad("must be more than 0");
  const match = /^(\d+)(?:\.(\d+))?(.*)$/s.exec(text);
  if (!match) return bad(`expected a number of bytes or a number with a unit, e.g. "512Mi" or "2G" ${UNITS}`);
  const [, whole, fraction = "", unit] = match;
  let perUnit = 1n;
  if (unit !== "") {
    const known = BYTES_PER_UNIT.get(unit);
    if (known === undefined) return bad(`unknown unit ${JSON.stringify(unit)} ${UNITS}`);
    perUnit = known;
  } else if (fraction !== "") {
    return bad(`bytes must be a whole number; add a unit, e.g. "${text}Gi" ${UNITS}`);
  }
  // Exact decimal arithmetic; a fraction of a byte is rounded up to a whole one.
  const scale = 10n ** BigInt(fraction.length);
  const scaled = (BigInt(whole) * scale + BigInt(fraction || "0")) * perUnit;
  const bytes = (scaled + scale - 1n) / scale;
  if (bytes === 0n) return bad("must be more than 0; leave 'memory' out for no requirement");
  if (bytes > MAX_BYTES) return bad(`too large, the limit is ${MAX_BYTES} bytes (just under 8388608Ti)`);
  return { ok: true, bytes };
}
