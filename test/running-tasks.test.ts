// The agent's record of what it runs: an attempt runs once, and a task's next
// attempt, handed to another slot while the earlier one winds down, runs too.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { RunningTasks } from "@otto/agent/running-tasks";

describe("the attempts an agent runs", () => {
  it("knows an attempt it already runs, so a repeated answer is not run twice", () => {
    const running = new RunningTasks();
    running.start({ taskId: "t1", attempt: 1 });
    assert.equal(running.has({ taskId: "t1", attempt: 1 }), true);
    assert.deepEqual(running.taskIds(), ["t1"]);
  });

  it("takes a task's next attempt while its earlier attempt still winds down in another slot", () => {
    const running = new RunningTasks();
    running.start({ taskId: "t1", attempt: 1 });
    assert.equal(running.has({ taskId: "t1", attempt: 2 }), false);
    running.start({ taskId: "t1", attempt: 2 });
    running.finish({ taskId: "t1", attempt: 1 }, true);
    assert.equal(running.has({ taskId: "t1", attempt: 2 }), true, "the earlier attempt's end leaves the next one running");
    assert.deepEqual(running.taskIds(), ["t1"]);
    assert.equal(running.size, 1);
  });

  it("keeps naming a task whose completion was never confirmed, within a bound", () => {
    const running = new RunningTasks(2);
    running.start({ taskId: "t1", attempt: 1 });
    running.finish({ taskId: "t1", attempt: 1 }, false);
    running.start({ taskId: "t2", attempt: 1 });
    running.finish({ taskId: "t2", attempt: 1 }, true);
    assert.deepEqual(running.taskIds(), ["t1"]);
    for (const taskId of ["t3", "t4"]) {
      running.start({ taskId, attempt: 1 });
      running.finish({ taskId, attempt: 1 }, false);
    }
    assert.deepEqual(running.taskIds().sort(), ["t3", "t4"]);
    assert.equal(running.size, 0);
  });
});
