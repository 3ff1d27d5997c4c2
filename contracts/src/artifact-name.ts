// An artifact's name is the path of the file in the job's workspace: relative,
// made of plain segments (letters, digits, '.', '_', '-', not starting with a
// '.'), so it can neither climb out of the workspace nor out of the job's
// prefix in object storage.
import { pipelineLimits } from "./pipeline-limits.ts";

export const artifactNameMax = pipelineLimits.artifactNameChars;
const segment = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;

export function artifactNameProblem(name: string): string | undefined {
  if (name.length === 0) return "an artifact path is empty";
  if (name.length > artifactNameMax) return `artifact path "${name.slice(0, 40)}…" is longer than ${artifactNameMax} characters`;
  const parts = name.split("/");
  if (parts.length > 20) return `artifact path "${name}" has more than 20 directories`;
  if (!parts.every((part) => segment.test(part))) {
    return `artifact path "${name}" must be relative, made of letters, digits, '.', '_' and '-' between single '/', no part starting with '.' (so no ".." either)`;
  }
  return undefined;
}
