// The SDK while Otto cannot be reached: a call that may be made again (a
// read, a submission with its request id, which `submit` always names) is
// made again until it gets through; one that may not (a SubmitRun without a
// request id) fails at once, for its caller to decide.
// The client reaches the real gateway through a TCP relay that cuts every
// connection while it is "down", and counts them.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import net from "node:net";
import pg from "pg";
import { createOttoClient, pipeline, RunState, submit, waitForRun } from "@otto/sdk";
import { startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

describe("the SDK while the gateway cannot be reached", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  let relay: net.Server;
  let relayUrl: string;
  // Down until the test says otherwise: no client has a connection to it
  // kept alive from before.
  let up = false;
  let connections = 0;
  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 2 });
    const gateway = new URL(otto.gatewayUrl);
    relay = net.createServer((client) => {
      connections++;
      if (!up) return void client.destroy();
      const upstream = net.connect(Number(gateway.port), gateway.hostname);
      client.on("error", () => upstream.destroy());
      upstream.on("error", () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve));
    relayUrl = `https://127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    relay?.close();
    await db?.end();
    await otto?.stopAndClean();
  });

  it("makes a read and a submission again until it gets through, and a call that may not be repeated fails at once", async () => {
    const client = createOttoClient({ baseUrl: relayUrl, token: otto.adminToken, caFile: otto.caFile });
    const once = createOttoClient({ baseUrl: relayUrl, token: otto.adminToken, caFile: otto.caFile, retryForMs: 0 });
    const earlier = await submit(otto.client, pipeline("before-the-cut").job("a", { steps: ["true"] }).build());
    await waitForRun(otto.client, earlier.id);
    const body = pipeline("during-the-cut").job("a", { steps: ["true"] }).build();
    const requestId = randomUUID();

    await assert.rejects(client.runs.submitRun({ source: { case: "pipeline", value: body } }));
    assert.equal(connections, 1, "a SubmitRun without a request id is tried once");
    await assert.rejects(once.runs.getRun({ runId: earlier.id }));
    assert.equal(connections, 2, "a client with retryForMs 0 tries a read once");

    const submitting = submit(client, body, "", { requestId });
    const reading = client.runs.getRun({ runId: earlier.id });
    await waitFor("both calls to be made again", () => connections >= 2 + 2 * 3);
    up = true;
    const [run, read] = await Promise.all([submitting, reading]);
    assert.equal(read.run?.state, RunState.SUCCEEDED);
    assert.equal((await waitForRun(client, run.id)).state, RunState.SUCCEEDED);
    const { rows } = await db.query("SELECT id, request_id FROM coordinator.runs WHERE name = 'during-the-cut'");
    assert.deepEqual(rows, [{ id: run.id, request_id: requestId }], "one run, the retried submission's");
  });
});
