// Masks a job's secret values in the lines of its log. Lines arrive whole
// (the spawner splits output at newlines), so a secret that the output
// delivered in pieces is whole again here; a multi-line secret is also masked
// line by line. Common accidental encodings (base64, URL) are masked too.
// Short secrets mask every occurrence of their few characters: that is the
// price of a short secret.
export function createSecretMasker(values: string[]): (line: string) => string {
  const needles = new Set<string>();
  for (const value of values) {
    if (value === "") continue;
    needles.add(value);
    needles.add(Buffer.from(value).toString("base64"));
    needles.add(encodeURIComponent(value));
    if (value.includes("\n")) for (const part of value.split(/\r?\n/)) if (part.length >= 4) needles.add(part);
  }
  const ordered = [...needles].sort((a, b) => b.length - a.length);
  if (ordered.length === 0) return (line) => line;
  return (line) => {
    let out = line;
    for (const needle of ordered) if (out.includes(needle)) out = out.split(needle).join("***");
    return out;
  };
}
