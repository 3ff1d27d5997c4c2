import assert from "node:assert/strict";
import { test } from "node:test";
import { jobKey } from "@otto/kit/job-key";

test("a job's name as a storage key segment: old-form names as they are, any other a fixed-length hash", () => {
  for (const name of ["build", "_x", "deploy-prod_2", "j".repeat(64)]) assert.equal(jobKey(name), name);
  const keys = ["test[node=20,os=linux]", "test[node=22,os=linux]", "a/b", "..", "job.x"].map(jobKey);
  for (const key of keys) assert.match(key, /^job\.[0-9a-f]{64}$/);
  assert.equal(new Set(keys).size, keys.length);
  assert.equal(jobKey("test[node=20,os=linux]"), keys[0], "the same name, the same key");
});
