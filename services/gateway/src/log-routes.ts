import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { LogService, type ReadLogRequest, type ReadLogResponse } from "@otto/gen/v1/log_service_pb";
import { RunState, type RunJob } from "@otto/gen/v1/run_pb";
import { RunService } from "@otto/gen/v1/run_service_pb";
import type { RegistryClient } from "@otto/kit/registry-client";
import { isFinal } from "@otto/contracts/run-state";
import { followJournal } from "./follow-journal.ts";

const jobIsFinal = (job: RunJob) => isFinal(job.state);

// The public LogService. Each attempt of a job has its own log; a read of
// attempt 0 starts with the latest one and, when following, goes on with the
// attempts a retry starts, until the job is final. A followed attempt is
// streamed live from the objects service until it is over, then read to the end.
export function logServiceImpl(registry: RegistryClient): ServiceImpl<typeof LogService> {
  const readFromObjects = (req: Omit<ReadLogRequest, "$typeName" | "$unknown">, signal: AbortSignal) =>
    registry.call("objects", LogService, async (c) => c.readLog(req, { signal, timeoutMs: 0 }));
  const jobOf = async (runId: string, name: string): Promise<RunJob> => {
    const { run } = await registry.call("coordinator", RunService, (c) => c.getRun({ runId }));
    const job = run!.jobs.find((j) => j.name === name);
    if (!job) {
      const names = run!.jobs.map((j) => `"${j.name}"`).join(", ");
      throw new ConnectError(`run ${runId} has no job "${name}"; its jobs are ${names}`, Code.NotFound);
    }
    return job;
  };
  // Resolves once `done` holds for the job, checked at each of its journal events.
  const jobReaches = async (runId: string, name: string, done: (job: RunJob) => boolean, signal: AbortSignal) => {
    for await (const { event } of followJournal(registry, runId, 0n, signal)) {
      if (!event || event.step !== "" || (event.job !== name && event.job !== "")) continue;
      if (done(await jobOf(runId, name))) return;
    }
  };
  return {
    async *readLog(req, ctx) {
      let job = await jobOf(req.runId, req.job);
      if (req.attempt > Math.max(job.attempt, 1)) {
        throw new ConnectError(`job "${req.job}" has had ${job.attempt} attempt(s), not ${req.attempt}`, Code.NotFound);
      }
      let attempt = req.attempt || Math.max(job.attempt, 1);
      // Where the next read starts and how much more it may send: a read
      // that goes on (from live to final, or to the next attempt) resumes
      // where the last one stopped.
      let start = { offset: req.offset, tail: req.tail, line: req.line };
      let left = req.limit > 0n ? req.limit : -1n;
      const read = (follow: boolean, signal: AbortSignal) => readFromObjects({ ...req, ...start, attempt, follow, limit: left > 0n ? left : 0n }, signal);
      const sent = (answer: ReadLogResponse) => {
        start = { offset: answer.endOffset, tail: 0, line: 0n };
        if (left > 0n) left -= req.grep !== "" ? BigInt(answer.matchLines.length) : BigInt(lineEnds(answer.text));
        return { ...answer, attempt };
      };
      for (;;) {
        const live = (j: RunJob) => !jobIsFinal(j) && j.state !== RunState.QUEUED && j.attempt === attempt;
        if (req.follow && (live(job) || (job.attempt === 0 && !jobIsFinal(job)))) {
          const over = new AbortController();
          const signal = AbortSignal.any([ctx.signal, over.signal]);
          const attemptOver = (j: RunJob) => jobIsFinal(j) || j.attempt > attempt || (j.attempt === attempt && !live(j));
          const watching = jobReaches(req.runId, req.job, attemptOver, signal).then(
            () => over.abort(),
            () => over.abort(),
          );
          try {
            for await (const answer of await read(true, signal)) {
              yield sent(answer);
              if (answer.deleted !== "" || left === 0n) return;
            }
          } catch (err) {
            if (!over.signal.aborted || ctx.signal.aborted) throw err;
          } finally {
            over.abort();
            await watching;
          }
        }
        for await (const answer of await read(false, ctx.signal)) {
          yield sent(answer);
          if (answer.deleted !== "" || left === 0n) return;
        }
        if (req.attempt > 0 || !req.follow) return;
        // Following every attempt: go on with the next one, if the job gets one.
        await jobReaches(req.runId, req.job, (j) => jobIsFinal(j) || j.attempt > attempt, ctx.signal);
        job = await jobOf(req.runId, req.job);
        if (job.attempt <= attempt) return;
        attempt += 1;
        start = { offset: 0n, tail: 0, line: 0n };
      }
    },
  };
}

function lineEnds(text: string): number {
  let n = 0;
  for (let at = text.indexOf("\n"); at !== -1; at = text.indexOf("\n", at + 1)) n++;
  return n;
}
