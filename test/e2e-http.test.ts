// The sample pipeline over raw HTTP with JSON bodies, as curl sends them: no SDK.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "@otto/launcher/system";
import { postJson, postJsonStream, request, startTestOtto, tailOfLog, type TestOtto } from "./helpers/otto.ts";

describe("Otto over HTTP with JSON bodies", () => {
  let otto: TestOtto;
  before(async () => {
    otto = await startTestOtto({ agents: 1 });
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await otto?.stopAndClean();
  });

  it("runs examples/hello.otto.yml from SubmitRun to SUCCEEDED with logs", async () => {
    const yaml = await readFile(join(repoRoot, "examples/hello.otto.yml"), "utf8");
    const submitted = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml });
    assert.equal(submitted.status, 200, submitted.text);
    const run = submitted.json.run;
    assert.match(run.id, /^[0-9a-f-]{36}$/);
    assert.equal(run.state, "RUN_STATE_QUEUED");
    assert.deepEqual(run.jobs.map((j: any) => j.name), ["build", "lint", "test"]);

    const watched = await postJsonStream(otto.gatewayUrl, "/otto.v1.RunService/WatchRun", { runId: run.id });
    assert.equal(watched.status, 200);
    const events = watched.messages.map((m) => m.event);
    assert.deepEqual(events.map((e) => Number(e.seq)), events.map((_, i) => i + 1), "journal is gap-free from 1");
    const last = events[events.length - 1];
    assert.equal(last.state, "RUN_STATE_SUCCEEDED");
    assert.equal(last.job ?? "", "");

    const got = await postJson(otto.gatewayUrl, "/otto.v1.RunService/GetRun", { runId: run.id });
    assert.equal(got.status, 200);
    const final = got.json.run;
    assert.equal(final.state, "RUN_STATE_SUCCEEDED");
    assert.ok(final.createdAt && final.startedAt && final.finishedAt);
    for (const job of final.jobs) {
      assert.equal(job.state, "RUN_STATE_SUCCEEDED", job.name);
      for (const step of job.steps) {
        assert.equal(step.state, "RUN_STATE_SUCCEEDED");
        assert.equal(step.exitCode ?? 0, 0);
      }
    }
    assert.equal(final.jobs[0].steps[0].name, "compile");

    const log = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId: run.id, job: "build" });
    assert.equal(log.status, 200);
    const text = log.messages.map((m) => m.text).join("");
    assert.match(text, /^\d{4}-\d\d-\d\dT[\d:.]+Z compile \| hi from /m, "env and shell expansion reach the step");
    assert.match(text, /make \| made app$/m);
  });

  it("answers GET for read RPCs and pages through ListRuns", async () => {
    const yaml = "name: tiny\njobs:\n  one:\n    steps:\n      - run: 'true'\n";
    for (let i = 0; i < 3; i++) {
      const r = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml });
      assert.equal(r.status, 200, r.text);
    }
    const first = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", { pageSize: 2 });
    assert.equal(first.status, 200);
    assert.equal(first.json.runs.length, 2);
    assert.ok(first.json.nextPageToken);
    const second = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", { pageSize: 2, pageToken: first.json.nextPageToken });
    assert.ok(second.json.runs.length >= 1);
    const ids = [...first.json.runs, ...second.json.runs].map((r: any) => r.id);
    assert.equal(new Set(ids).size, ids.length, "pages do not overlap");

    const message = encodeURIComponent(JSON.stringify({ runId: ids[0] }));
    const response = await request(`${otto.gatewayUrl}/otto.v1.RunService/GetRun?encoding=json&message=${message}`);
    assert.equal(response.status, 200);
    assert.equal(JSON.parse(response.text).run.id, ids[0]);
  });

  it("stores a retried SubmitRun with the same requestId once", async () => {
    const yaml = "name: once\njobs:\n  one:\n    steps:\n      - run: 'true'\n";
    const requestId = `retry-${Date.now()}`;
    const first = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml, requestId });
    const again = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml, requestId });
    assert.equal(first.status, 200, first.text);
    assert.equal(again.json.run.id, first.json.run.id);
    const other = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml, requestId: requestId + "-2" });
    assert.notEqual(other.json.run.id, first.json.run.id);
  });

  it("reports pipeline errors as invalid_argument with line and column", async () => {
    const yaml = "name: broken\njobs:\n  build:\n    stepz:\n      - run: make\n";
    const r = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, "invalid_argument");
    assert.match(r.json.message, /pipeline\.yml:4:5: unknown key 'stepz'.*did you mean 'steps'\?/);
    assert.match(r.json.message, /pipeline\.yml:4:5: job 'build' is missing required key 'steps'/);
  });

  it("gives clear errors for unknown runs, bad ids and unknown methods", async () => {
    const missing = await postJson(otto.gatewayUrl, "/otto.v1.RunService/GetRun", { runId: "00000000-0000-4000-8000-000000000000" });
    assert.equal(missing.status, 404);
    assert.equal(missing.json.code, "not_found");
    const bad = await postJson(otto.gatewayUrl, "/otto.v1.RunService/GetRun", { runId: "nope" });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, "invalid_argument");
    const unknown = await postJson(otto.gatewayUrl, "/otto.v1.RunService/Explode", {});
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.code, "unimplemented");
    const neither = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", {});
    assert.equal(neither.status, 400);
    assert.match(neither.json.message, /pipelineYaml/);
    const malformed = await postJson(otto.gatewayUrl, "/otto.v1.RunService/SubmitRun", "{not json");
    assert.equal(malformed.status, 400);
    const logOfNoJob = await postJsonStream(otto.gatewayUrl, "/otto.v1.LogService/ReadLog", { runId: "00000000-0000-4000-8000-000000000000", job: "x" });
    assert.equal(logOfNoJob.status, 404);
  });
});
