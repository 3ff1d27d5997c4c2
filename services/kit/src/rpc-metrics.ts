import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { rpcDuration, rpcRequests } from "./metrics.ts";
import { codeName } from "./tracing-interceptors.ts";

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
    record(codeName(ConnectError.from(err).code));
    throw err;
  }
  if (!response.stream) {
    record("ok");
    return response;
  }
  const messages = response.message as AsyncIterable<unknown>;
  return {
    ...response,
    message: (async function* () {
      let code = "ok";
      try {
        yield* messages;
      } catch (err) {
        code = codeName(ConnectError.from(err).code);
        throw err;
      } finally {
        record(code === "ok" && req.signal.aborted ? codeName(Code.Canceled) : code);
      }
    })(),
  } as typeof response;
};
