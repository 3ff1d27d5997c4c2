import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { rpcDuration, rpcRequests } from "./metrics.ts";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { whenStreamEnds } from "./stream-end.ts";

// Counts and times every RPC this process handles, by method and code.
export const measureServerCalls: Interceptor = (next) => async (req) => {
  const method = `${req.service.typeName}/${req.method.name}`;
  const started = performance.now();
  const record = (code: string) => {
    rpcRequests.inc({ method, code });
    rpcDuration.observe({ method, code }, (performance.now() - started) / 1000);
  };
  let response;
  try {
    response = await next(req);
  } catch (err) {
    record(codeToString(ConnectError.from(err).code));
    throw err;
  }
  if (!response.stream) {
    record("ok");
    return response;
  }
  return whenStreamEnds(response, (err) => {
    if (err !== undefined) record(codeToString(ConnectError.from(err).code));
    else record(req.signal.aborted ? codeToString(Code.Canceled) : "ok");
  });
};

// A call refused before it reached the interceptors (by the gate that runs
// before the body is read) counts too.
export function countRefusedCall(method: string, err: unknown): void {
  const code = codeToString(ConnectError.from(err).code);
  rpcRequests.inc({ method, code });
  rpcDuration.observe({ method, code }, 0);
}
