// Which failed calls between Otto's processes are tried again, elsewhere
// (kit/registry-client.ts mayTryAgain): the rule the gateway and agents
// share. Against real sockets in this process.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { RunService } from "@otto/gen/v1/run_service_pb";
import { clientFor } from "@otto/kit/clients";
import { mayTryAgain } from "@otto/kit/registry-client";

const runId = "8e0f3e9b-8c1a-4a5e-9b1a-1c2d3e4f5a6b";
let cutter: net.Server;
let url: string;

before(async () => {
  // A process killed as it is being called: the connection is accepted and
  // cut before TLS is set up.
  cutter = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => cutter.listen(0, "127.0.0.1", resolve));
  url = `https://127.0.0.1:${(cutter.address() as AddressInfo).port}`;
});
after(() => new Promise((resolve) => cutter.close(resolve)));

test("a call cut off before TLS was set up never arrived: it may go elsewhere, idempotent or not", async () => {
  const err = await clientFor(RunService, url)
    .cancelRun({ runId })
    .then(
      () => assert.fail("the call cannot succeed"),
      (e: unknown) => e,
    );
  assert.equal(mayTryAgain(err, false), true, String(err));
  assert.equal(mayTryAgain(err, true), true);
});

test("a refusal is not tried again, however the call was made", async () => {
  const { Code, ConnectError } = await import("@connectrpc/connect");
  for (const code of [Code.InvalidArgument, Code.FailedPrecondition, Code.PermissionDenied, Code.NotFound]) {
    assert.equal(mayTryAgain(new ConnectError("no", code), true), false, Code[code]);
  }
  assert.equal(mayTryAgain(new ConnectError("[aborted] read ECONNRESET", Code.Aborted), false), false, "a broken call may have arrived");
  assert.equal(mayTryAgain(new ConnectError("[aborted] read ECONNRESET", Code.Aborted), true), true);
  assert.equal(mayTryAgain(new ConnectError("late", Code.DeadlineExceeded), true), true);
});
