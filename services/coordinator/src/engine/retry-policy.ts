// Whether a failed attempt of a job is tried again.
export interface RetryPolicy {
  max: number;
  exitCodes: number[];
  agentLost: boolean | null;
}

export interface FailureCause {
  agentLost: boolean;
  exitCode?: number;
}

// With neither exit codes nor agent_lost set, any failure is retried; exit
// codes narrow it to those codes; agent_lost says whether losing the agent counts.
export function shouldRetry(policy: RetryPolicy, attempt: number, cause: FailureCause): boolean {
  if (attempt > policy.max) return false;
  const anyFailure = policy.exitCodes.length === 0 && policy.agentLost !== true;
  if (cause.agentLost) return policy.agentLost ?? anyFailure;
  if (policy.exitCodes.length > 0) return cause.exitCode !== undefined && policy.exitCodes.includes(cause.exitCode);
  return anyFailure;
}
