// A job's `if:` in the YAML parser, the SDK's builder and the shared rules:
// an expression's problem is reported at the line and column of the
// character it is about, with the same message wherever the pipeline was made.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { PipelineSchema, type Pipeline } from "@otto/gen/v1/pipeline_pb";
import { pipelineProblems } from "@otto/contracts/pipeline-rules";
import { formatProblems, parsePipeline } from "@otto/parser/parse-pipeline";
import { InvalidPipelineError, pipeline, type JobSpec } from "@otto/sdk";

/** One YAML line per argument, so that line N of the file is argument N. */
const yaml = (...lines: string[]): string => lines.join("\n") + "\n";

/** A pipeline whose job 'a' has the given line(s) for `if` as its lines 4 on. */
const withIf = (...ifLines: string[]) => yaml("name: x", "jobs:", "  a:", ...ifLines, "    steps: [{run: make}]");

/** The 1-based column of `marker` in `line`, which holds it once. */
function columnOf(line: string, marker: string): number {
  const index = line.indexOf(marker);
  assert.ok(index >= 0 && line.indexOf(marker, index + 1) < 0, `'${marker}' is in '${line}' once`);
  return index + 1;
}

function parsed(text: string): Pipeline {
  const result = parsePipeline(text);
  assert.ok(result.ok, `unexpected problems:\n${result.ok ? "" : formatProblems(result.problems, "ci.yaml")}`);
  return result.pipeline;
}

function problems(text: string): [number, number, string][] {
  const result = parsePipeline(text);
  assert.ok(!result.ok, "expected problems, but the pipeline parsed");
  return result.problems.map((p) => [p.line, p.column, p.message]);
}

function refusal(build: () => unknown): InvalidPipelineError {
  try {
    build();
  } catch (err) {
    assert.ok(err instanceof InvalidPipelineError, `not an InvalidPipelineError: ${String(err)}`);
    return err;
  }
  assert.fail("the builder accepted the pipeline");
}

const SUCESS = "unknown function 'sucess'; did you mean 'success'?";

describe("the parser: 'if' on a job", () => {
  test("the expression goes into the job's condition as written; no 'if', no condition", () => {
    const result = parsed(
      yaml(
        "name: x",
        "jobs:",
        "  build:",
        "    steps: [{run: make}]",
        "  deploy:",
        "    needs: [build]",
        "    if: branch == 'main' && env.DEPLOY != 'no'",
        "    steps: [{run: make}]",
        "  report:",
        "    needs: [build]",
        "    if: ${{ failure() }}",
        "    steps: [{run: make}]",
        "  notify:",
        "    if: \"always()\"",
        "    steps: [{run: make}]",
      ),
    );
    assert.deepEqual(
      result.jobs.map((job) => [job.name, job.condition]),
      [
        ["build", ""],
        ["deploy", "branch == 'main' && env.DEPLOY != 'no'"],
        ["report", "${{ failure() }}"],
        ["notify", "always()"],
      ],
    );
  });

  test("YAML's true and false are the expressions true and false", () => {
    assert.equal(parsed(withIf("    if: true")).jobs[0].condition, "true");
    assert.equal(parsed(withIf("    if: False")).jobs[0].condition, "false");
  });

  test("a problem in a plain expression is at its column", () => {
    const line = "    if: success() && sucess()";
    assert.deepEqual(problems(withIf(line)), [[4, columnOf(line, "sucess"), SUCESS]]);
  });

  test("inside ${{ }}, at the column of the character", () => {
    const line = "    if: ${{ failure() || cancelled( 'x' ) }}";
    assert.deepEqual(problems(withIf(line)), [[4, columnOf(line, "'x'"), "cancelled() takes no arguments; write cancelled()"]]);
  });

  test("in single quotes, counting '' as the one quote it stands for", () => {
    const line = "    if: 'branch == ''it''''s'' && sucess()'";
    assert.deepEqual(problems(withIf(line)), [[4, columnOf(line, "sucess"), SUCESS]]);
  });

  test("in double quotes, counting each escape as the character it stands for", () => {
    const line = String.raw`    if: "event == \"push\" && env.X == '\u00e9\U0001F680\x41\t' && sucess()"`;
    assert.deepEqual(problems(withIf(line)), [[4, columnOf(line, "sucess"), SUCESS]]);
  });

  test("in a flow mapping, and at the end of the text for what is missing there", () => {
    const line = `  a: {if: "(success()", steps: [{run: make}]}`;
    assert.deepEqual(problems(yaml("name: x", "jobs:", line)), [
      [3, columnOf(line, `", steps`), "missing ')': a '(' is still open at the end of the expression"],
    ]);
  });

  test("an expression over several lines: at the start of its text", () => {
    assert.deepEqual(problems(withIf("    if: success() &&", "      sucess()")), [[4, 9, SUCESS]]);
    assert.deepEqual(problems(withIf("    if: >-", "      success() &&", "      sucess()")), [[4, 9, SUCESS]]);
  });

  test("an expression too long is refused at its first character beyond the limit", () => {
    const line = `    if: "'${"x".repeat(999)}'"`; // the expression is the string 'xx...x', 1001 characters
    assert.deepEqual(problems(withIf(line)), [[4, columnOf(line, `'"`), "the 'if' expression is 1001 characters long, at most 1000 allowed"]]);
  });

  test("a leading '!' is a YAML tag: said so, at the '!'", () => {
    const tag = (written: string) => `YAML reads '${written}' as a tag, not as part of the expression; quote the whole expression or write it inside \${{ }}`;
    assert.deepEqual(problems(withIf("    if: !cancelled()")), [[4, 9, tag("!cancelled()")]]);
    assert.deepEqual(problems(withIf("    if: ! cancelled()")), [[4, 9, tag("!")]]);
    assert.deepEqual(parsed(withIf("    if: '!cancelled()'")).jobs[0].condition, "!cancelled()");
    assert.deepEqual(parsed(withIf("    if: ${{ !cancelled() }}")).jobs[0].condition, "${{ !cancelled() }}");
  });

  test("what is not an expression", () => {
    const expected = "expected an expression such as success() or branch == 'main' for 'if'";
    assert.deepEqual(problems(withIf("    if: 1")), [[4, 9, `${expected}, got a number (1)`]]);
    assert.deepEqual(problems(withIf("    if:")), [[4, 5, `${expected}, got nothing`]]);
    assert.deepEqual(problems(withIf("    if: [success()]")), [[4, 9, `${expected}, got a list`]]);
    assert.deepEqual(problems(withIf('    if: ""')), [[4, 10, "the 'if' expression is empty; write a condition such as success() or branch == 'main'"]]);
  });

  test("an unknown key near 'if' is pointed at it", () => {
    assert.deepEqual(problems(withIf("    iff: success()")), [[4, 5, "unknown key 'iff' in job 'a'; did you mean 'if'?"]]);
  });

  test("formatted as file:line:col, the column inside the expression", () => {
    const text = yaml("name: x", "jobs:", "  build:", "    steps: [{run: make}]", "  deploy:", "    needs: [build]", "    if: branch == main", "    steps: [{run: make}]");
    const result = parsePipeline(text);
    assert.ok(!result.ok);
    assert.equal(
      formatProblems(result.problems, "ci.yaml"),
      "ci.yaml:7:19: unknown name 'main'; the names are branch, event, env.NAME, true and false",
    );
  });
});

describe("the builder and the shared rules: the parser's messages", () => {
  const bad: [string, string][] = [
    ["success() && sucess()", SUCESS],
    ["branch == 'main", "unterminated string: add the closing '"],
    ["always(true)", "always() takes no arguments; write always()"],
    ["(failure()", "missing ')': a '(' is still open at the end of the expression"],
    ["github.ref == 'refs/heads/main'", "unknown name 'github'; the names are branch, event, env.NAME, true and false"],
    ["", "the 'if' expression is empty; write a condition such as success() or branch == 'main'"],
  ];
  for (const [expression, message] of bad) {
    test(`${JSON.stringify(expression)}: the same message from the parser and the builder`, () => {
      const text = withIf(`    if: ${JSON.stringify(expression)}`);
      assert.deepEqual(
        problems(text).map((p) => p[2]),
        [message],
      );
      for (const option of ["if", "condition"] as const) {
        const spec: JobSpec = { steps: ["make"], [option]: expression };
        const refused = refusal(() => pipeline("x").job("a", spec).build());
        assert.deepEqual(refused.problems, [{ path: ["jobs", 0, "condition"], message }]);
        assert.equal(refused.message, `invalid pipeline:\n${message}`);
      }
    });
  }

  test("the builder puts 'if' (or 'condition') into the IR, like the parser", () => {
    const built = pipeline("x")
      .job("build", { steps: ["make"] })
      .job("deploy", { needs: ["build"], if: "branch == 'main' && env.DEPLOY != 'no'", steps: ["make"] })
      .job("report", { needs: ["build"], condition: "${{ failure() }}", steps: ["make"] })
      .build();
    const fromYaml = parsed(
      yaml(
        "name: x",
        "jobs:",
        "  build:",
        "    steps: [{run: make}]",
        "  deploy:",
        "    needs: [build]",
        "    if: branch == 'main' && env.DEPLOY != 'no'",
        "    steps: [{run: make}]",
        "  report:",
        "    needs: [build]",
        "    if: ${{ failure() }}",
        "    steps: [{run: make}]",
      ),
    );
    assert.deepEqual(
      built.jobs.map((job) => job.condition),
      fromYaml.jobs.map((job) => job.condition),
    );
  });

  test("the builder refuses two different conditions for one job", () => {
    const refused = refusal(() => pipeline("x").job("a", { if: "failure()", condition: "always()", steps: ["make"] }).build());
    assert.deepEqual(refused.problems, [{ path: ["jobs", 0, "condition"], message: "give a job's condition as 'if' or as 'condition', not both" }]);
    assert.equal(pipeline("x").job("a", { if: "always()", condition: "always()", steps: ["make"] }).build().jobs[0].condition, "always()");
  });

  test("an IR made by neither (a curl) is checked by the same rule; an empty condition is none", () => {
    const ir = create(PipelineSchema, {
      name: "x",
      jobs: [
        { name: "a", steps: [{ run: "a" }] },
        { name: "b", needs: ["a"], condition: "failure() ||", steps: [{ run: "b" }] },
        { name: "c", needs: ["a"], condition: "${{ always() }}", steps: [{ run: "c" }] },
      ],
    });
    assert.deepEqual(pipelineProblems(ir), [
      { path: ["jobs", 1, "condition"], message: "the expression ends after '||' where a value is expected, such as success() or 'text'" },
    ]);
  });
});
