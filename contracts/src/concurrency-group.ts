// A pipeline's concurrency group name: any text, where `${{ branch }}`
// stands for the branch of a project's run (empty for a run submitted
// directly).
import { pipelineLimits as limits } from "./pipeline-limits.ts";

const expression = /\$\{\{\s*([^}]*?)\s*\}\}/g;

/** The first problem of a group name, at its offset in the text. */
export function concurrencyGroupProblem(group: string): { offset: number; message: string } | undefined {
  if (group.trim() === "") return { offset: 0, message: "expected a non-empty group name for 'group' in 'concurrency'" };
  if (group.length > limits.concurrencyGroupChars) {
    return { offset: 0, message: `the concurrency group's name is too long: ${group.length} characters, at most ${limits.concurrencyGroupChars} allowed` };
  }
  for (const match of group.matchAll(expression)) {
    if (match[1] !== "branch") return { offset: match.index, message: `unknown expression '${match[0]}' in a concurrency group; only \${{ branch }} may be used there` };
  }
  const open = group.replace(expression, (text) => " ".repeat(text.length)).indexOf("${{");
  if (open >= 0) return { offset: open, message: "'${{' without a closing '}}' in a concurrency group" };
  return undefined;
}

/** The group a run joins. */
export function concurrencyGroupName(group: string, branch: string): string {
  return group.replace(expression, branch);
}
