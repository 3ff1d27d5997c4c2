// `text` in pieces of at most `maxLength` UTF-16 units, never cutting a
// surrogate pair in two; the last piece is what is left (empty for "").
export function* pieces(text: string, maxLength: number): Generator<string> {
  let start = 0;
  while (text.length - start > maxLength) {
    let end = start + maxLength;
    if (/[\ud800-\udbff]/.test(text[end - 1])) end--;
    yield text.slice(start, end);
    start = end;
  }
  yield text.slice(start);
}
