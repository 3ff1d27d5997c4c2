const DERIVED_STEP_NAME_MAX = 40;

/** The first line of `run`, shortened: the name of a step that has none. */
export function deriveStepName(run: string): string {
  const firstLine = run.trim().split("\n")[0].trim();
  return Array.from(firstLine).slice(0, DERIVED_STEP_NAME_MAX).join("").trimEnd();
}
