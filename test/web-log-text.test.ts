// The web UI's pure parts: a log line's ANSI colours as text and class
// names, and the layout of a run's jobs by their needs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseAnsi } from "@otto/web/ansi";
import { layOutJobs } from "@otto/web/graph-layout";
import { logRowOf } from "@otto/web/log-lines";

test("SGR codes become classes over plain text; other escapes are dropped", () => {
  assert.deepEqual(parseAnsi("plain"), [{ text: "plain", classes: "" }]);
  assert.deepEqual(parseAnsi("\x1b[1;31mFAIL\x1b[0m ok"), [
    { text: "FAIL", classes: "ansi-bold ansi-fg-1" },
    { text: " ok", classes: "" },
  ]);
  assert.deepEqual(parseAnsi("\x1b[92;44mx\x1b[39my\x1b[49mz"), [
    { text: "x", classes: "ansi-fg-10 ansi-bg-4" },
    { text: "y", classes: "ansi-bg-4" },
    { text: "z", classes: "" },
  ]);
  assert.deepEqual(parseAnsi("\x1b[38;5;9ma\x1b[38;5;200mb\x1b[38;2;1;2;3mc\x1b[mD"), [
    { text: "a", classes: "ansi-fg-9" },
    { text: "bcD", classes: "" },
  ]);
  assert.deepEqual(parseAnsi("\x1b[2K\x1b[1Gdone\x1b]0;title\x07!"), [{ text: "done!", classes: "" }]);
  assert.deepEqual(parseAnsi("10%\r50%\r100%"), [{ text: "100%", classes: "" }]);
  assert.deepEqual(parseAnsi("\x1b[7minv"), [{ text: "inv", classes: "ansi-fg-default-bg ansi-bg-default-fg" }]);
});

test("markup in a line stays text", () => {
  const line = '<img src=x onerror="window.__pwned=1">';
  assert.deepEqual(parseAnsi(`\x1b[31m${line}`), [{ text: line, classes: "ansi-fg-1" }]);
});

test("a stamped log line is taken apart into time, step and text", () => {
  const row = logRowOf({ attempt: 1, number: 7, text: "2026-11-22T10:00:00.123Z compile | \x1b[32mok\x1b[0m | done", match: false });
  assert.equal(row.time, "2026-11-22T10:00:00.123Z");
  assert.equal(row.step, "compile");
  assert.deepEqual(row.segments, [
    { text: "ok", classes: "ansi-fg-2" },
    { text: " | done", classes: "" },
  ]);
  assert.deepEqual(logRowOf({ attempt: 1, number: 1, text: "raw text", match: true }).segments, [{ text: "raw text", classes: "" }]);
});

test("jobs are laid out in columns by their needs, in the run's order within a column", () => {
  const layout = layOutJobs([
    { name: "lint", needs: [] },
    { name: "build", needs: [] },
    { name: "test", needs: ["build"] },
    { name: "package", needs: ["build", "test"] },
    { name: "deploy", needs: ["package", "lint", "gone"] },
  ]);
  const at = Object.fromEntries(layout.jobs.map((job) => [job.name, [job.column, job.row]]));
  assert.deepEqual(at, { lint: [0, 0], build: [0, 1], test: [1, 0], package: [2, 0], deploy: [3, 0] });
  assert.equal(layout.columns, 4);
  assert.equal(layout.rows, 2);
  assert.deepEqual(
    layout.edges.map((edge) => `${edge.from}->${edge.to}`),
    ["build->test", "build->package", "test->package", "package->deploy", "lint->deploy"],
  );
  const cyclic = layOutJobs([
    { name: "a", needs: ["b"] },
    { name: "b", needs: ["a"] },
  ]);
  assert.equal(cyclic.jobs.length, 2);
});
