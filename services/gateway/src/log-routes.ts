import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { LogService } from "../../../gen/otto/v1/log_service_pb.ts";
import { RunState } from "../../../gen/otto/v1/run_pb.ts";
import { RunService } from "../../../gen/otto/v1/run_service_pb.ts";
import type { RegistryClient } from "../../kit/src/registry-client.ts";
import { followJournal } from "./follow-journal.ts";

const finalStates: RunState[] = [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED];

// The public LogService. A followed read streams the live log from the
// objects service until the job is final, then reads whatever came last.
export function logServiceImpl(registry: RegistryClient): ServiceImpl<typeof LogService> {
  const readFromObjects = (runId: string, job: string, offset: bigint, follow: boolean, signal: AbortSignal) =>
    registry.call("objects", LogService, async (c) => c.readLog({ runId, job, offset, follow }, { signal, timeoutMs: 0 }));
  return {
    async *readLog(req, ctx) {
      if (req.offset < 0n) throw new ConnectError("offset must not be negative", Code.InvalidArgument);
      const { run } = await registry.call("coordinator", RunService, (c) => c.getRun({ runId: req.runId }));
      const job = run!.jobs.find((j) => j.name === req.job);
      if (!job) {
        const names = run!.jobs.map((j) => `"${j.name}"`).join(", ");
        throw new ConnectError(`run ${req.runId} has no job "${req.job}"; its jobs are ${names}`, Code.NotFound);
      }
      let offset = req.offset;
      if (req.follow && !finalStates.includes(job.state)) {
        const jobDone = new AbortController();
        const watching = watchUntilJobFinal(registry, req.runId, req.job, AbortSignal.any([ctx.signal, jobDone.signal])).then(
          () => jobDone.abort(),
          () => jobDone.abort(),
        );
        try {
          for await (const chunk of await readFromObjects(req.runId, req.job, offset, true, AbortSignal.any([ctx.signal, jobDone.signal]))) {
            offset = chunk.offset + BigInt(Buffer.byteLength(chunk.text));
            yield chunk;
          }
        } catch (err) {
          if (!jobDone.signal.aborted || ctx.signal.aborted) throw err;
        } finally {
          jobDone.abort();
          await watching;
        }
      }
      for await (const chunk of await readFromObjects(req.runId, req.job, offset, false, ctx.signal)) {
        yield chunk;
      }
    },
  };
}

// Resolves when the job (or the whole run) is final.
async function watchUntilJobFinal(registry: RegistryClient, runId: string, job: string, signal: AbortSignal): Promise<void> {
  for await (const event of followJournal(registry, runId, 0n, signal)) {
    if (!finalStates.includes(event.state) || event.step !== "") continue;
    if (event.job === job || event.job === "") return;
  }
}
