import type { StepClaims } from "./step-token.ts";

// The header in which the gateway tells a coordinator which step adds jobs
// (RunService.AddJobs): the job and attempt of the step token it checked,
// whose run is the request's (the coordinator takes these calls from the
// gateway alone).
export const addingStepHeader = "otto-adding-step";

export type AddingStep = Pick<StepClaims, "job" | "attempt">;

export function encodeAddingStep(step: AddingStep): string {
  return JSON.stringify({ job: step.job, attempt: step.attempt });
}

export function decodeAddingStep(text: string | null): AddingStep | undefined {
  try {
    const { job, attempt } = JSON.parse(text ?? "") as Record<string, unknown>;
    return typeof job === "string" && Number.isInteger(attempt) ? { job, attempt: attempt as number } : undefined;
  } catch {
    return undefined;
  }
}
