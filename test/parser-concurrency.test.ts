// A pipeline's `concurrency:` in the YAML parser, the SDK's builder and the
// shared rules: the forms it takes, and each mistake at its line and column
// (an expression in the group's name at its own column), with the same
// message from the builder.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { concurrencyGroupName } from "@otto/contracts/concurrency-group";
import { formatProblems, parsePipeline } from "@otto/parser/parse-pipeline";
import { InvalidPipelineError, pipeline } from "@otto/sdk";

const withConcurrency = (...lines: string[]) => ["name: x", ...lines, "jobs:", "  a:", "    steps: [{run: make}]"].join("\n") + "\n";

function problems(text: string): [number, number, string][] {
  const result = parsePipeline(text);
  assert.ok(!result.ok, "expected problems, but the pipeline parsed");
  return result.problems.map((p) => [p.line, p.column, p.message]);
}

function concurrencyOf(text: string) {
  const result = parsePipeline(text);
  assert.ok(result.ok, result.ok ? "" : formatProblems(result.problems, "ci.yaml"));
  const { group, limit, cancelInProgress } = result.pipeline.concurrency!;
  return { group, limit, cancelInProgress };
}

describe("concurrency in a pipeline file", () => {
  test("a group's name alone, or a mapping; the limit defaults to one", () => {
    assert.deepEqual(concurrencyOf(withConcurrency("concurrency: deploy-${{ branch }}")), { group: "deploy-${{ branch }}", limit: 1, cancelInProgress: false });
    assert.deepEqual(concurrencyOf(withConcurrency("concurrency:", "  group: prod", "  limit: 3", "  cancel-in-progress: true")), {
      group: "prod",
      limit: 3,
      cancelInProgress: true,
    });
    const none = parsePipeline(withConcurrency());
    assert.ok(none.ok && none.pipeline.concurrency === undefined, "no concurrency, no group");
  });

  test("each mistake at its place: an expression at its own column, inside quotes and escapes too", () => {
    assert.deepEqual(problems(withConcurrency("concurrency: deploy-${{ sha }}")), [
      [2, 21, "unknown expression '${{ sha }}' in a concurrency group; only ${{ branch }} may be used there"],
    ]);
    assert.deepEqual(problems(withConcurrency('concurrency: "a\\tb ${{ env.X }}"')), [
      [2, 20, "unknown expression '${{ env.X }}' in a concurrency group; only ${{ branch }} may be used there"],
    ]);
    assert.deepEqual(problems(withConcurrency("concurrency: {group: 'x ${{ branch'}")), [[2, 25, "'${{' without a closing '}}' in a concurrency group"]]);
    assert.deepEqual(problems(withConcurrency("concurrency:", "  group: prod", "  limit: 0", "  cancel-in-progress: yes", "  limt: 2")), [
      [4, 10, "expected an integer from 1 to 100 for 'limit' in 'concurrency', got a number (0)"],
      [5, 23, "expected true or false for 'cancel-in-progress', got a string (\"yes\")"],
      [6, 3, "unknown key 'limt' in 'concurrency'; did you mean 'limit'?"],
    ]);
    assert.deepEqual(problems(withConcurrency("concurrency:", "  limit: 2")), [[3, 3, "'concurrency' is missing required key 'group'"]]);
    assert.deepEqual(problems(withConcurrency("concurrency: [a]")), [
      [2, 14, "expected a group name or a mapping with 'group', 'limit' and 'cancel-in-progress' for 'concurrency', got a list"],
    ]);
  });

  test("the builder refuses a bad group with the parser's message", () => {
    try {
      pipeline("x").concurrency("deploy-${{ sha }}").job("a", { steps: ["make"] }).build();
      assert.fail("built");
    } catch (err) {
      assert.ok(err instanceof InvalidPipelineError);
      assert.deepEqual(err.problems, [{ path: ["concurrency", "group"], message: "unknown expression '${{ sha }}' in a concurrency group; only ${{ branch }} may be used there" }]);
    }
    assert.equal(pipeline("x").concurrency("prod", { limit: 2, cancelInProgress: true }).job("a", { steps: ["make"] }).build().concurrency?.limit, 2);
  });

  test("${{ branch }} stands for the run's branch, empty for a run submitted directly", () => {
    assert.equal(concurrencyGroupName("deploy-${{ branch }}-${{branch}}", "main"), "deploy-main-main");
    assert.equal(concurrencyGroupName("deploy-${{ branch }}", ""), "deploy-");
  });
});
