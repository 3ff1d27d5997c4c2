import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join, relative } from "node:path";

// The engine's state columns (runs, jobs and steps' state, tasks' status)
// are written by the one write path alone: any other statement that sets
// them would skip the transition table and the journal.
const root = join(import.meta.dirname, "../..");
const writePath = "services/coordinator/src/engine/apply-changes.ts";
const setsState = /UPDATE\s+coordinator\.(runs|jobs|steps|tasks)\b(?:(?!\bWHERE\b|`)[\s\S])*?\bSET\b(?:(?!\bWHERE\b|`)[\s\S])*?[\s,](state|status)\s*=/gi;

async function sources(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await sources(path)));
    else if (entry.name.endsWith(".ts")) found.push(path);
  }
  return found;
}

test("no statement outside the write path sets a run's, job's, step's or task's state", async () => {
  const offenders: string[] = [];
  for (const file of await sources(join(root, "services"))) {
    const name = relative(root, file);
    if (name === writePath) continue;
    for (const match of (await readFile(file, "utf8")).matchAll(setsState)) offenders.push(`${name}: ${match[0].replace(/\s+/g, " ")}`);
  }
  assert.deepEqual(offenders, []);
});

test("the check finds such a statement", () => {
  const sample = "await client.query(`UPDATE coordinator.jobs SET message = $3, state = $2 WHERE run_id = $1`);";
  assert.equal([...sample.matchAll(setsState)].length, 1);
  const harmless = "await client.query(`UPDATE coordinator.tasks SET lease_expires_at = now() WHERE status = 'assigned'`);";
  assert.equal([...harmless.matchAll(setsState)].length, 0);
});
