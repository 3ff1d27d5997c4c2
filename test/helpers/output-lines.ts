import type { OnText } from "@otto/agent/output-text";

// A step's output as the lines it printed: each piece of a line too long to
// come whole (passed on with `continues`) is an entry of its own.
export function collectLines(lines: string[]): OnText {
  return (text, continues) => {
    if (continues) lines.push(text.toString("utf8"));
    else lines.push(...text.toString("utf8").split("\n").slice(0, -1));
  };
}
