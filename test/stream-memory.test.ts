// A stream served to a token's holder (a followed log, a watched run) holds
// no message once it has been read: a long follow of a big log must not keep
// all of it in the gateway's memory until the stream ends.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createContextValues, type StreamResponse, type UnaryRequest } from "@connectrpc/connect";
import { callerKey } from "@otto/kit/caller";
import { endStreamsOnRevocation } from "@otto/kit/end-streams-on-revocation";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

test("the revocation check of a stream keeps no message it has passed on", async () => {
  const interceptor = endStreamsOnRevocation({ isLiveId: async () => true });
  const sent: Array<WeakRef<object>> = [];
  async function* messages() {
    for (let i = 0; i < 50; i++) {
      const message = { text: "x".repeat(100_000) + i };
      sent.push(new WeakRef(message));
      yield message;
    }
  }
  const values = createContextValues().set(callerKey, { kind: "api", tokenId: "t1", name: "test", scopes: ["runs:read"] });
  const next = async () => ({ stream: true, message: messages() }) as unknown as StreamResponse;
  const response = (await interceptor(next)({ stream: false, contextValues: values } as unknown as UnaryRequest)) as StreamResponse;
  // 40 messages read, the stream still open.
  const reader = response.message[Symbol.asyncIterator]();
  for (let read = 0; read < 40; read++) assert.equal((await reader.next()).done, false);
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  gc();
  const kept = sent.slice(0, 30).filter((ref) => ref.deref() !== undefined).length;
  assert.equal(kept, 0, `${kept} of the first 30 messages are still held`);
  await reader.return?.();
});
