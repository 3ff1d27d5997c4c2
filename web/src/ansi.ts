// A log line's ANSI escape codes as styled pieces of text. SGR codes
// (ESC [ ... m) become class names (ansi-bold, ansi-fg-1, ansi-bg-12, ...);
// every other escape sequence is dropped. The result is text and class
// names only: the page renders each piece as a text node in a span.

export interface AnsiSegment {
  text: string;
  classes: string;
}

interface Style {
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
  inverse: boolean;
  fg: number | undefined;
  bg: number | undefined;
}

const plain = (): Style => ({ bold: false, dim: false, italic: false, underline: false, inverse: false, fg: undefined, bg: undefined });

// CSI sequences (SGR among them), OSC sequences (ended by BEL or ESC \), and
// any other two-character escape.
const escapes = /\x1b\[([0-9;:?]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?/g;

export function parseAnsi(line: string): AnsiSegment[] {
  // A line rewritten with carriage returns (progress bars) shows what was printed last.
  const cr = line.replace(/\r+$/, "").lastIndexOf("\r");
  const text = cr >= 0 ? line.slice(cr + 1) : line;
  const segments: AnsiSegment[] = [];
  let style = plain();
  let at = 0;
  const push = (piece: string) => {
    if (piece === "") return;
    const classes = classesOf(style);
    const last = segments.at(-1);
    if (last && last.classes === classes) last.text += piece;
    else segments.push({ text: piece, classes });
  };
  for (const match of text.matchAll(escapes)) {
    push(text.slice(at, match.index));
    at = match.index + match[0].length;
    if (match[2] === "m") style = applySgr(style, match[1]);
  }
  push(text.slice(at));
  return segments;
}

function applySgr(current: Style, params: string): Style {
  const style = { ...current };
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i];
    if (code === 0) Object.assign(style, plain());
    else if (code === 1) style.bold = true;
    else if (code === 2) style.dim = true;
    else if (code === 3) style.italic = true;
    else if (code === 4) style.underline = true;
    else if (code === 7) style.inverse = true;
    else if (code === 22) style.bold = style.dim = false;
    else if (code === 23) style.italic = false;
    else if (code === 24) style.underline = false;
    else if (code === 27) style.inverse = false;
    else if (code >= 30 && code <= 37) style.fg = code - 30;
    else if (code === 39) style.fg = undefined;
    else if (code >= 40 && code <= 47) style.bg = code - 40;
    else if (code === 49) style.bg = undefined;
    else if (code >= 90 && code <= 97) style.fg = code - 90 + 8;
    else if (code >= 100 && code <= 107) style.bg = code - 100 + 8;
    else if (code === 38 || code === 48) {
      // 38;5;N (one of 256 colours: the first 16 have classes, the others
      // stay unstyled) or 38;2;R;G;B (true colour: unstyled).
      const mode = codes[i + 1];
      if (mode === 5) {
        const n = codes[i + 2];
        const colour = n !== undefined && n < 16 ? n : undefined;
        if (code === 38) style.fg = colour;
        else style.bg = colour;
        i += 2;
      } else if (mode === 2) {
        if (code === 38) style.fg = undefined;
        else style.bg = undefined;
        i += 4;
      }
    }
  }
  return style;
}

function classesOf(style: Style): string {
  const classes: string[] = [];
  if (style.bold) classes.push("ansi-bold");
  if (style.dim) classes.push("ansi-dim");
  if (style.italic) classes.push("ansi-italic");
  if (style.underline) classes.push("ansi-underline");
  const [fg, bg] = style.inverse ? [style.bg ?? "default-bg", style.fg ?? "default-fg"] : [style.fg, style.bg];
  if (fg !== undefined) classes.push(`ansi-fg-${fg}`);
  if (bg !== undefined) classes.push(`ansi-bg-${bg}`);
  return classes.join(" ");
}
