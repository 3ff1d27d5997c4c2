import { readNumber } from "./config.ts";

// How long Otto keeps what a finished run leaves, in days from the run's end
// (decimals allowed); 0 keeps it forever.
export interface RetentionPolicy {
  // The run itself (its jobs, steps, tasks and journal), and whatever of
  // its logs and artifacts is still there.
  runDays: number;
  logDays: number;
  artifactDays: number;
}

// As long as GitHub Actions keeps logs and artifacts by default: what
// people expect of a CI server, long enough to look back over a release
// cycle, and a bound on what a busy laptop keeps under .otto/.
export const defaultRetentionDays = 90;

// A hundred years: longer is "forever", which is 0.
const maxDays = 36_500;

export const retentionVariables = ["OTTO_RETENTION_DAYS", "OTTO_LOG_RETENTION_DAYS", "OTTO_ARTIFACT_RETENTION_DAYS"] as const;

// OTTO_RETENTION_DAYS, and OTTO_LOG_RETENTION_DAYS and
// OTTO_ARTIFACT_RETENTION_DAYS, which default to it. Logs and artifacts go
// with their run at the latest: a longer (or endless) setting for them is
// cut to the runs' own, and `notes` say so.
export function readRetention(env: Record<string, string | undefined>): { policy: RetentionPolicy; notes: string[] } {
  const runDays = readNumber(env, "OTTO_RETENTION_DAYS", defaultRetentionDays, 0, maxDays);
  const notes: string[] = [];
  const part = (name: string) => {
    const days = readNumber(env, name, runDays, 0, maxDays);
    if (runDays > 0 && (days === 0 || days > runDays)) {
      notes.push(
        `${name}=${env[name]} would keep them longer than their runs (OTTO_RETENTION_DAYS=${runDays}); they are deleted with their runs after ${runDays} days`,
      );
      return runDays;
    }
    return days;
  };
  return { policy: { runDays, logDays: part("OTTO_LOG_RETENTION_DAYS"), artifactDays: part("OTTO_ARTIFACT_RETENTION_DAYS") }, notes };
}

export function retentionIsOff(policy: RetentionPolicy): boolean {
  return policy.runDays === 0 && policy.logDays === 0 && policy.artifactDays === 0;
}
