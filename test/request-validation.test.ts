// Requests that break the protovalidate rules in proto/ are refused with
// invalid_argument and a message naming each bad field, before any handler
// runs; requests within the rules go through as before.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { postJson, request, startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

const nilRunId = "00000000-0000-4000-8000-000000000000";

describe("request validation", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ agents: 1 });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  const call = (path: string, body: unknown) => postJson(otto.gatewayUrl, path, body);
  const assertInvalid = (response: Awaited<ReturnType<typeof call>>, message: RegExp) => {
    assert.equal(response.status, 400, response.text);
    assert.equal(response.json.code, "invalid_argument");
    assert.match(response.json.message, message);
  };

  it("refuses a run id that is not a UUID", async () => {
    const got = await call("/otto.v1.RunService/GetRun", { runId: "not-a-uuid" });
    assertInvalid(got, /^invalid GetRunRequest: run_id: must be a valid UUID$/);
    // The violations also come as a buf.validate.Violations error detail.
    assert.deepEqual(got.json.details?.map((d: { type: string }) => d.type), ["buf.validate.Violations"]);
    assertInvalid(await call("/otto.v1.RunService/GetRun", {}), /run_id: value is empty, which is not a valid UUID/);
    assertInvalid(await call("/otto.v1.RunService/CancelRun", { runId: "42" }), /^invalid CancelRunRequest: run_id: /);
  });

  it("refuses a page size out of range and a page token that no page gave", async () => {
    assertInvalid(
      await call("/otto.v1.RunService/ListRuns", { pageSize: 1000 }),
      /^invalid ListRunsRequest: page_size: must be greater than or equal to 0 and less than or equal to 100$/,
    );
    assertInvalid(await call("/otto.v1.RunService/ListRuns", { pageSize: -1 }), /page_size/);
    assertInvalid(await call("/otto.v1.RunService/ListRuns", { pageToken: "next" }), /page_token: must be a valid UUID/);
  });

  it("refuses a pipeline larger than 256 KiB as a limit reached (resource_exhausted)", async () => {
    const pipelineYaml = "# padding\n".repeat(30_000); // 300 kB
    const response = await call("/otto.v1.RunService/SubmitRun", { pipelineYaml });
    assert.equal(response.status, 429, response.text);
    assert.equal(response.json.code, "resource_exhausted");
    assert.match(response.json.message, /^invalid SubmitRunRequest: pipeline_yaml: must be at most 262144 bytes$/);
  });

  it("lists every violation of a request", async () => {
    const response = await call("/otto.v1.RunService/SubmitRun", {
      pipelineYaml: "name: x\njobs:\n  a:\n    steps: [echo a]\n",
      requestId: "r".repeat(101),
      fileName: "f".repeat(1025),
    });
    assertInvalid(response, /file_name: must be at most 1024 characters/);
    assert.match(response.json.message, /request_id: must be at most 100 characters/);
  });

  it("validates the request of a streaming call read with a plain JSON body", async () => {
    assertInvalid(
      await call("/otto.v1.LogService/ReadLog", { runId: nilRunId, job: "build", offset: -5 }),
      /^invalid ReadLogRequest: offset: must be greater than or equal to 0$/,
    );
    assertInvalid(await call("/otto.v1.LogService/ReadLog", { runId: nilRunId, job: "no such job!" }), /job: does not match regex pattern/);
    assertInvalid(await call("/otto.v1.RunService/WatchRun", { runId: "x" }), /^invalid WatchRunRequest: run_id: /);
  });

  it("validates GET requests of side-effect-free methods too", async () => {
    const message = encodeURIComponent(JSON.stringify({ runId: "nope" }));
    const response = await fetchGet(`${otto.gatewayUrl}/otto.v1.RunService/GetRun?encoding=json&message=${message}`);
    assert.equal(response.status, 400);
    assert.equal(response.json.code, "invalid_argument");
    assert.match(response.json.message, /run_id: must be a valid UUID/);
  });

  it("lets requests within the rules through", async () => {
    const missing = await call("/otto.v1.RunService/GetRun", { runId: nilRunId });
    assert.equal(missing.status, 404, missing.text);
    const upper = await call("/otto.v1.RunService/GetRun", { runId: nilRunId.toUpperCase() });
    assert.equal(upper.status, 404, upper.text);
    const listed = await call("/otto.v1.RunService/ListRuns", { pageSize: 0, pageToken: "" });
    assert.equal(listed.status, 200, listed.text);
    const submitted = await call("/otto.v1.RunService/SubmitRun", {
      pipelineYaml: "name: ok\njobs:\n  a:\n    steps:\n      - run: echo ok\n",
      requestId: "r".repeat(100),
      fileName: "f".repeat(1024),
    });
    assert.equal(submitted.status, 200, submitted.text);
    const noSuchJob = await call("/otto.v1.LogService/ReadLog", { runId: submitted.json.run.id, job: "b", attempt: 0, offset: 0 });
    assert.equal(noSuchJob.status, 404, noSuchJob.text);
  });

  // A GET the way postJson makes its requests (TLS and token as configured).
  async function fetchGet(url: string) {
    const response = await request(url);
    return { status: response.status, json: JSON.parse(response.text) };
  }
});
