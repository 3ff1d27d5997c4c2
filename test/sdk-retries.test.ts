// The SDK while the gateway is down: a call that may be made again (a read,
// a submission with its request id, which `submit` always names) is retried
// until the gateway is back; one that may not (a SubmitRun without a
// request id) fails at once with `unavailable`, for its caller to decide.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import pg from "pg";
import { Code, ConnectError } from "@connectrpc/connect";
import { createOttoClient, pipeline, RunState, submit, waitForRun } from "@otto/sdk";
import { startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

describe("the SDK while the gateway restarts", () => {
  let otto: TestOtto;
  let db: pg.Pool;
  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    db = new pg.Pool({ connectionString: otto.databaseUrl, max: 2 });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  it("makes a read and a submission again until it is back, and a call that may not be repeated fails at once", async () => {
    const earlier = await submit(otto.client, pipeline("before-restart").job("a", { steps: ["true"] }).build());
    await waitForRun(otto.client, earlier.id);
    const body = pipeline("during-restart").job("a", { steps: ["true"] }).build();
    const requestId = randomUUID();

    await otto.supervisor.stop("gateway");
    await assert.rejects(
      otto.client.runs.submitRun({ source: { case: "pipeline", value: body } }),
      (err) => ConnectError.from(err).code === Code.Unavailable,
    );
    const noRetries = createOttoClient({ baseUrl: otto.gatewayUrl, token: otto.adminToken, caFile: otto.caFile, retryForMs: 0 });
    await assert.rejects(noRetries.runs.getRun({ runId: earlier.id }), (err) => ConnectError.from(err).code === Code.Unavailable);
    const submitting = submit(otto.client, body, "", { requestId });
    const reading = otto.client.runs.getRun({ runId: earlier.id });
    await otto.supervisor.resume("gateway");

    const [run, read] = await Promise.all([submitting, reading]);
    assert.equal(read.run?.state, RunState.SUCCEEDED);
    assert.equal((await waitForRun(otto.client, run.id)).state, RunState.SUCCEEDED);
    const { rows } = await db.query("SELECT id, request_id FROM coordinator.runs WHERE name = 'during-restart'");
    assert.deepEqual(rows, [{ id: run.id, request_id: requestId }], "one run, the retried submission's; the refused one stored none");
  });
});
