// Where `pattern` (a global RegExp) first matches on each line of `text`.
export function firstOnEachLine(pattern: RegExp, text: string): number[] {
  const found: number[] = [];
  pattern.lastIndex = 0;
  for (let match = pattern.exec(text); match; match = pattern.exec(text)) {
    found.push(match.index);
    const lineEnd = text.indexOf("\n", match.index);
    if (lineEnd === -1) break;
    pattern.lastIndex = lineEnd + 1;
  }
  return found;
}
