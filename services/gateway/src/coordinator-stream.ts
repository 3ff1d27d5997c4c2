import type { Client } from "@connectrpc/connect";
import { RunService } from "@otto/gen/v1/run_service_pb";
import { isBrokenConnection, isUnreachable, type RegistryClient } from "@otto/kit/registry-client";

export type CoordinatorClient = Client<typeof RunService>;

// A RunService stream from any coordinator, opened again on a peer when the
// one serving it goes away mid-stream (at most 5 times in a row without a
// message). `open` is called for each try, so it resumes from wherever the
// caller has got to. A caller that stops early closes the coordinator's
// stream too.
export async function* coordinatorStream<M>(
  registry: RegistryClient,
  open: (client: CoordinatorClient) => AsyncIterable<M>,
  signal: AbortSignal,
): AsyncGenerator<M> {
  for (let failures = 0; ; ) {
    try {
      // The first message is awaited inside the call, so that a coordinator
      // that cannot be reached is passed over for the next one.
      const stream = await registry.call("coordinator", RunService, async (c) => {
        const iterator = open(c)[Symbol.asyncIterator]();
        return { iterator, first: await iterator.next() };
      });
      try {
        for (let next = stream.first; !next.done; next = await stream.iterator.next()) {
          failures = 0;
          yield next.value;
        }
      } finally {
        await stream.iterator.return?.();
      }
      return;
    } catch (err) {
      if (!(isUnreachable(err) || isBrokenConnection(err)) || ++failures > 5 || signal.aborted) throw err;
    }
  }
}
