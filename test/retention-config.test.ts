// OTTO_RETENTION_DAYS and the logs' and artifacts' own settings, read once
// at start: their defaults, decimals, and what is cut to the runs' own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "@otto/kit/config";
import { readRetention } from "@otto/kit/retention-config";
import { retentionEnv } from "@otto/launcher/system";

test("runs, logs and artifacts are kept 90 days by default; logs and artifacts follow OTTO_RETENTION_DAYS", () => {
  assert.deepEqual(readRetention({}), { policy: { runDays: 90, logDays: 90, artifactDays: 90 }, notes: [] });
  assert.deepEqual(readRetention({ OTTO_RETENTION_DAYS: "30" }).policy, { runDays: 30, logDays: 30, artifactDays: 30 });
  assert.deepEqual(readRetention({ OTTO_RETENTION_DAYS: "0" }), { policy: { runDays: 0, logDays: 0, artifactDays: 0 }, notes: [] });
});

test("days may have decimals, and logs and artifacts may be kept shorter than their runs", () => {
  const { policy, notes } = readRetention({ OTTO_RETENTION_DAYS: "0.5", OTTO_LOG_RETENTION_DAYS: "0.00001", OTTO_ARTIFACT_RETENTION_DAYS: "0.25" });
  assert.deepEqual(policy, { runDays: 0.5, logDays: 0.00001, artifactDays: 0.25 });
  assert.deepEqual(notes, []);
  // Runs kept forever, their logs not.
  assert.deepEqual(readRetention({ OTTO_RETENTION_DAYS: "0", OTTO_LOG_RETENTION_DAYS: "7" }).policy, { runDays: 0, logDays: 7, artifactDays: 0 });
});

test("logs or artifacts set to outlive their runs go with them, and a note says so", () => {
  const { policy, notes } = readRetention({ OTTO_RETENTION_DAYS: "30", OTTO_LOG_RETENTION_DAYS: "60", OTTO_ARTIFACT_RETENTION_DAYS: "0" });
  assert.deepEqual(policy, { runDays: 30, logDays: 30, artifactDays: 30 });
  assert.deepEqual(notes, [
    "OTTO_LOG_RETENTION_DAYS=60 would keep them longer than their runs (OTTO_RETENTION_DAYS=30); they are deleted with their runs after 30 days",
    "OTTO_ARTIFACT_RETENTION_DAYS=0 would keep them longer than their runs (OTTO_RETENTION_DAYS=30); they are deleted with their runs after 30 days",
  ]);
});

test("a value that is not a number of days stops the start, naming the variable; the launcher checks before it starts anything", () => {
  for (const [name, value] of [
    ["OTTO_RETENTION_DAYS", "-1"],
    ["OTTO_RETENTION_DAYS", "ninety"],
    ["OTTO_LOG_RETENTION_DAYS", "1e9"],
    ["OTTO_ARTIFACT_RETENTION_DAYS", "0x10"],
  ]) {
    assert.throws(() => readRetention({ [name!]: value }), (err: unknown) => err instanceof ConfigError && err.message === `${name} must be a number from 0 to 36500, got "${value}"`);
    assert.throws(() => retentionEnv({ [name!]: value }), ConfigError);
  }
  // The coordinators get the settings that are set.
  assert.deepEqual(retentionEnv({ OTTO_RETENTION_DAYS: "14", OTTO_ARTIFACT_RETENTION_DAYS: "", OTTO_OTHER: "x" }), { OTTO_RETENTION_DAYS: "14" });
});
