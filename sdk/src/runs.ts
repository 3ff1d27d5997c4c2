import type { Pipeline } from "@otto/gen/v1/pipeline_pb";
import type { Run, RunEvent } from "@otto/gen/v1/run_pb";
import type { OttoClient } from "./clients.ts";

export { finalStates, isFinal } from "@otto/contracts/run-state";

// Submits a pipeline given as file text or as IR (from the builder). It
// names a request id (a new one unless given), so that it may be sent again
// (by the client, while Otto answers unavailable, or by the caller with the
// same id) without storing a second run.
export async function submit(client: OttoClient, pipeline: string | Pipeline, fileName = "", options: { requestId?: string } = {}): Promise<Run> {
  const source =
    typeof pipeline === "string"
      ? ({ case: "pipelineYaml", value: pipeline } as const)
      : ({ case: "pipeline", value: pipeline } as const);
  const requestId = options.requestId ?? globalThis.crypto.randomUUID();
  const { run } = await client.runs.submitRun({ source, fileName, requestId });
  return run!;
}

// The run's events as they happen, until the run is final.
export async function* watchRun(client: OttoClient, runId: string, signal?: AbortSignal): AsyncGenerator<RunEvent> {
  for await (const { event } of client.runs.watchRun({ runId }, { signal, timeoutMs: 0 })) {
    if (event) yield event;
  }
}

// Waits until the run is final and returns it.
export async function waitForRun(client: OttoClient, runId: string, signal?: AbortSignal): Promise<Run> {
  for await (const _event of watchRun(client, runId, signal)) {
    // the stream ends with the run's final event
  }
  const { run } = await client.runs.getRun({ runId }, { signal });
  return run!;
}

export async function submitAndWait(client: OttoClient, pipeline: string | Pipeline, signal?: AbortSignal): Promise<Run> {
  const run = await submit(client, pipeline);
  return waitForRun(client, run.id, signal);
}
