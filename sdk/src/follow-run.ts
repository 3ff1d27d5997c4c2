import { RunState, type Run } from "@otto/gen/v1/run_pb";
import { runStateName } from "@otto/contracts/run-state";
import type { OttoClient } from "./clients.ts";
import { followLogs } from "./logs.ts";
import { waitForRun } from "./runs.ts";

export interface FollowRunOutput {
  log(job: string, line: string): void;
  event(text: string): void;
}

// Prints every job's log live as the run goes, and why a job waits when
// that changes, and returns the final run. Logs of jobs that run in parallel
// interleave, each line tagged by its job.
export async function followRun(client: OttoClient, runId: string, out: FollowRunOutput): Promise<Run> {
  const following = new Map<string, Promise<void>>();
  const waitsShown = new Map<string, string>();
  for await (const { event, waits } of client.runs.watchRun({ runId, withWaits: true }, { timeoutMs: 0 })) {
    for (const { job, waitingFor } of waits?.jobs ?? []) {
      if (!waitingFor || waitsShown.get(job) === waitingFor.text) continue;
      waitsShown.set(job, waitingFor.text);
      out.event(`job ${job} waits: ${waitingFor.text}`);
    }
    if (!event) continue;
    const what = event.job === "" ? "run" : event.step === "" ? `job ${event.job}` : `step ${event.job}/${event.step}`;
    if (event.step === "") {
      out.event(`${what}: ${runStateName(event.state)}${event.message ? ` (${event.message})` : ""}`);
    }
    if (event.job !== "" && event.step === "" && event.state === RunState.RUNNING && !following.has(event.job)) {
      const job = event.job;
      following.set(
        job,
        (async () => {
          for await (const line of followLogs(client, runId, job)) out.log(job, line);
        })(),
      );
    }
  }
  await Promise.all(following.values());
  return waitForRun(client, runId);
}

export function describeRun(run: Run): string {
  const lines = [`run ${run.id} (${run.name}): ${runStateName(run.state)}`];
  if (run.rerunOf) lines.push(`  rerun of ${run.rerunOf}`);
  const source = run.source;
  if (source?.project) {
    const what = source.pullRequest ? `pull request ${source.pullRequest.number} (${source.branch})` : source.tag ? `tag ${source.tag}` : source.branch;
    lines.push(`  project ${source.project} #${source.number}, ${source.event} of ${what} at ${source.sha.slice(0, 12)}`);
    if (source.secretsWithheld) lines.push(`  secrets withheld: ${source.secretsWithheld}`);
  }
  if (run.message && run.jobs.length === 0) lines.push(`  ${run.message.replaceAll("\n", "\n  ")}`);
  for (const job of run.jobs) {
    const why = job.waitingFor && job.waitingFor.text !== job.message ? ` (${job.waitingFor.text})` : "";
    lines.push(`  job ${job.name}: ${runStateName(job.state)}${job.message ? ` - ${job.message}` : ""}${why}`);
    for (const step of job.steps) {
      const exit = step.exitCode !== undefined ? ` (exit ${step.exitCode})` : "";
      lines.push(`    step ${step.name}: ${runStateName(step.state)}${exit}`);
    }
  }
  return lines.join("\n");
}
