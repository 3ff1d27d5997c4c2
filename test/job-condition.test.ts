import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  conditionStatusFunctions,
  evaluateCondition,
  maxConditionNesting,
  parseCondition,
  type ConditionContext,
  type JobCondition,
} from "@otto/contracts/job-condition";
import { pipelineLimits } from "@otto/contracts/pipeline-limits";

function parsed(text: string): JobCondition {
  const result = parseCondition(text);
  assert.ok(result.ok, `'${text}' did not parse: ${result.ok ? "" : `${result.offset}: ${result.message}`}`);
  return result.condition;
}

const passed: ConditionContext = { success: true, failure: false, cancelled: false, branch: "main", event: "push", env: {} };
const failed: ConditionContext = { ...passed, success: false, failure: true };
const canceled: ConditionContext = { ...passed, success: false, cancelled: true };

function runs(text: string, context: ConditionContext): boolean {
  return evaluateCondition(parsed(text), context);
}

describe("parseCondition: the tree", () => {
  test("|| binds loosest, then &&, then == and !=, then !", () => {
    assert.deepEqual(parsed("failure() || success() && branch == 'main'"), {
      kind: "or",
      left: { kind: "status", name: "failure" },
      right: {
        kind: "and",
        left: { kind: "status", name: "success" },
        right: { kind: "compare", operator: "==", left: { kind: "branch" }, right: { kind: "string", value: "main" } },
      },
    });
    assert.deepEqual(parsed("!success() != false"), {
      kind: "compare",
      operator: "!=",
      left: { kind: "not", operand: { kind: "status", name: "success" } },
      right: { kind: "boolean", value: false },
    });
  });

  test("parentheses group", () => {
    assert.deepEqual(parsed("(failure() || success()) && event == 'push'"), {
      kind: "and",
      left: { kind: "or", left: { kind: "status", name: "failure" }, right: { kind: "status", name: "success" } },
      right: { kind: "compare", operator: "==", left: { kind: "event" }, right: { kind: "string", value: "push" } },
    });
  });

  test("${{ }} around the whole expression is optional, spaces and lines anywhere between tokens", () => {
    const bare = parsed("always() && env.DEPLOY == 'yes'");
    assert.deepEqual(parsed("${{ always() && env.DEPLOY == 'yes' }}"), bare);
    assert.deepEqual(parsed("  ${{always()&&env.DEPLOY=='yes'}}\n"), bare);
    assert.deepEqual(parsed("always()\n  && env.DEPLOY\t== 'yes'"), bare);
  });

  test("strings in single or double quotes, the quote written twice standing for itself", () => {
    assert.deepEqual(parsed("'it''s'"), { kind: "string", value: "it's" });
    assert.deepEqual(parsed('"say ""hi"""'), { kind: "string", value: 'say "hi"' });
    assert.deepEqual(parsed(`"it's" == 'a "b"'`), {
      kind: "compare",
      operator: "==",
      left: { kind: "string", value: "it's" },
      right: { kind: "string", value: 'a "b"' },
    });
    assert.deepEqual(parsed("''"), { kind: "string", value: "" });
  });

  test("the tree is plain data: through JSON it means the same", () => {
    const condition = parsed("(failure() || cancelled()) && !(branch != 'main') && env.X");
    const copy = JSON.parse(JSON.stringify(condition)) as JobCondition;
    assert.deepEqual(copy, condition);
    for (const context of [passed, failed, canceled, { ...failed, env: { X: "1" } }]) {
      assert.equal(evaluateCondition(copy, context), evaluateCondition(condition, context));
    }
  });
});

describe("evaluateCondition", () => {
  test("without a status function the expression means success() && (expression)", () => {
    assert.equal(runs("branch == 'main'", passed), true);
    assert.equal(runs("branch == 'main'", failed), false);
    assert.equal(runs("branch == 'main'", canceled), false);
    assert.equal(runs("true", failed), false);
    assert.equal(runs("false", passed), false);
    assert.equal(runs("success()", passed), true);
    assert.equal(runs("success()", failed), false);
  });

  test("a status function anywhere lifts the implicit success()", () => {
    assert.equal(runs("failure()", failed), true);
    assert.equal(runs("failure()", passed), false);
    assert.equal(runs("always()", failed), true);
    assert.equal(runs("always()", canceled), true);
    assert.equal(runs("cancelled()", canceled), true);
    assert.equal(runs("cancelled()", passed), false);
    assert.equal(runs("!cancelled()", failed), true);
    assert.equal(runs("failure() || branch == 'main'", failed), true);
    assert.equal(runs("always() && branch == 'release'", failed), false);
  });

  test("precedence decides: failure() || success() && false is failure() || (success() && false)", () => {
    assert.equal(runs("failure() || success() && false", failed), true);
    assert.equal(runs("(failure() || success()) && false", failed), false);
    assert.equal(runs("!false && false", passed), false);
  });

  test("== and != compare strings ignoring case", () => {
    assert.equal(runs("branch == 'MAIN'", passed), true);
    assert.equal(runs("'Push' == event", passed), true);
    assert.equal(runs("branch != 'Main'", passed), false);
    assert.equal(runs("branch != 'develop'", passed), true);
    assert.equal(runs("env.TARGET == 'Prod'", { ...passed, env: { TARGET: "pROD" } }), true);
  });

  test("booleans compare as booleans", () => {
    assert.equal(runs("failure() == true", failed), true);
    assert.equal(runs("failure() != cancelled()", failed), true);
    assert.equal(runs("(branch == 'main') == (event == 'push')", passed), true);
  });

  test("a string is true when it is not empty; an unset variable is ''", () => {
    assert.equal(runs("env.DEPLOY", { ...passed, env: { DEPLOY: "no" } }), true);
    assert.equal(runs("env.DEPLOY", { ...passed, env: { DEPLOY: "" } }), false);
    assert.equal(runs("env.DEPLOY", passed), false);
    assert.equal(runs("env.DEPLOY == ''", passed), true);
    assert.equal(runs("env.constructor == ''", passed), true, "names of Object.prototype are unset variables too");
    assert.equal(runs("!env.DEPLOY", passed), true);
    assert.equal(runs("'x'", passed), true);
    assert.equal(runs("''", passed), false);
  });

  test("&& and || give one of their operands, as on GitHub", () => {
    const target = "(env.TARGET || 'staging') == 'staging'";
    assert.equal(runs(target, passed), true);
    assert.equal(runs(target, { ...passed, env: { TARGET: "prod" } }), false);
    assert.equal(runs("(env.A && env.B) == 'b'", { ...passed, env: { A: "a", B: "b" } }), true);
    assert.equal(runs("(env.A && env.B) == ''", { ...passed, env: { B: "b" } }), true);
  });
});

describe("conditionStatusFunctions", () => {
  const functions = (text: string) => [...conditionStatusFunctions(parsed(text))].sort();

  test("the status functions called, or success() for an expression calling none", () => {
    assert.deepEqual(functions("branch == 'main'"), ["success"]);
    assert.deepEqual(functions("true"), ["success"]);
    assert.deepEqual(functions("always()"), ["always"]);
    assert.deepEqual(functions("failure() || cancelled() && !success()"), ["cancelled", "failure", "success"]);
    assert.deepEqual(functions("!cancelled()"), ["cancelled"]);
  });
});

describe("parseCondition: problems, at the offset of the character they are about", () => {
  // [text, offset, message]
  const problems: [string, number, string][] = [
    ["", 0, "the 'if' expression is empty; write a condition such as success() or branch == 'main'"],
    ["   ", 0, "the 'if' expression is empty; write a condition such as success() or branch == 'main'"],
    ["${{  }}", 3, "the 'if' expression is empty; write a condition such as success() or branch == 'main'"],
    ["${{ success()", 13, "missing '}}' to close '${{'"],
    ["success() && sucess()", 13, "unknown function 'sucess'; did you mean 'success'?"],
    ["Failure()", 0, "unknown function 'Failure'; did you mean 'failure'?"],
    ["contains(branch, 'x')", 0, "unknown function 'contains'; the functions are success(), failure(), always() and cancelled()"],
    ["branch()", 0, "'branch' is not a function; write branch without '('"],
    ["always('x')", 7, "always() takes no arguments; write always()"],
    ["failure( 1 )", 9, "failure() takes no arguments; write failure()"],
    ["cancelled(", 10, "missing ')' after 'cancelled('"],
    ["success", 0, "success is a function: write success()"],
    ["github.ref == 'main'", 0, "unknown name 'github'; the names are branch, event, env.NAME, true and false"],
    ["success() && brnach == 'main'", 13, "unknown name 'brnach'; did you mean 'branch'?"],
    ["True", 0, "unknown name 'True'; did you mean 'true'?"],
    ["b".repeat(100), 0, `unknown name '${"b".repeat(40)}...'; the names are branch, event, env.NAME, true and false`],
    ["env", 3, "write env.NAME for the environment variable NAME, e.g. env.DEPLOY_TARGET"],
    ["env.", 4, "expected the name of an environment variable right after 'env.'"],
    ["env.MY-VAR == 'x'", 4, "invalid environment variable name 'MY-VAR': use letters, digits and '_', not starting with a digit"],
    ["env.1ST", 4, "invalid environment variable name '1ST': use letters, digits and '_', not starting with a digit"],
    ["branch == 'main", 10, "unterminated string: add the closing '"],
    ['event == "push', 9, 'unterminated string: add the closing "'],
    ["branch == 'it''s", 10, "unterminated string: add the closing '"],
    ["${{ branch == 'main }}", 14, "unterminated string: add the closing '"],
    ["(success() || failure()", 23, "missing ')': a '(' is still open at the end of the expression"],
    ["(success() failure())", 11, "expected ')' to close '(', got 'failure'"],
    ["success())", 9, "unexpected ')': no '(' is open here"],
    ["success() failure()", 10, "unexpected 'failure' after the expression; join conditions with && or ||"],
    ["branch == 'main' 'dev'", 17, "unexpected 'dev' after the expression; join conditions with && or ||"],
    ["branch.name", 6, "unexpected '.' after the expression"],
    ["success() &&", 12, "the expression ends after '&&' where a value is expected, such as success() or 'text'"],
    ["|| failure()", 0, "expected a value, such as success(), branch or 'text', got '||'"],
    ["()", 1, "expected a value, such as success(), branch or 'text', got ')'"],
    ["branch = 'main'", 7, "write '==' to compare"],
    ["branch === 'main'", 7, "'===' is not an operator; write '=='"],
    ["branch !== 'main'", 7, "'!==' is not an operator; write '!='"],
    ["success() & failure()", 10, "write '&&' for 'and'"],
    ["success() | failure()", 10, "write '||' for 'or'"],
    ["env.N >= '2'", 6, "'>=' is not supported; only == and != compare"],
    ["env.N == 2", 9, "numbers are not supported; compare with the text instead, e.g. '2'"],
    ["branch == 'main' # comment", 17, "unexpected character '#'"],
    ["${{ success() }} && ${{ failure() }}", 14, "unexpected '}}': '${{ }}' may only enclose the whole expression"],
    ["success() && ${{ failure() }}", 13, "unexpected '${{': '${{ }}' may only enclose the whole expression"],
    ["success() }}", 10, "unexpected '}}': '${{ }}' may only enclose the whole expression"],
    ["branch == true", 7, "'==' cannot compare a string with a boolean; to compare with the text, quote it: 'true'"],
    ["success() != 'true'", 10, "'!=' cannot compare a boolean with a string"],
    ["!branch == 'main'", 8, "'==' cannot compare a boolean with a string; '!' applies to the value before '==': write !(a == b) to negate the comparison"],
    ["(env.A || success()) == 'x'", 21, "'==' cannot compare a string or a boolean with a string"],
    ["branch == 'a' == 'b'", 14, "comparisons do not chain: put parentheses around the comparison before '=='"],
  ];
  for (const [text, offset, message] of problems) {
    test(`${JSON.stringify(text)}: ${message}`, () => {
      assert.deepEqual(parseCondition(text), { ok: false, offset, message });
    });
  }

  test("the first problem in the text is the one reported", () => {
    assert.deepEqual(parseCondition("nope && 'open"), { ok: false, offset: 0, message: "unknown name 'nope'; the names are branch, event, env.NAME, true and false" });
    assert.deepEqual(parseCondition("sucess(1) ="), { ok: false, offset: 0, message: "unknown function 'sucess'; did you mean 'success'?" });
  });

  test(`at most ${pipelineLimits.conditionChars} characters, counted as protovalidate counts them (code points)`, () => {
    const max = pipelineLimits.conditionChars;
    assert.equal(max, 1000);
    const string = (characters: number, char = "x") => `'${char.repeat(characters - 2)}'`;
    assert.ok(parseCondition(string(max)).ok);
    assert.deepEqual(parseCondition(string(max + 1)), { ok: false, offset: max, message: `the 'if' expression is ${max + 1} characters long, at most ${max} allowed` });
    const astral = string(max, "🚀");
    assert.equal(astral.length, 2 * max - 2);
    assert.ok(parseCondition(astral).ok, "a thousand characters, though more UTF-16 units");
    const over = string(max + 1, "🚀");
    assert.deepEqual(parseCondition(over), { ok: false, offset: over.length - 1, message: `the 'if' expression is ${max + 1} characters long, at most ${max} allowed` });
  });

  test(`'(' and '!' nest at most ${maxConditionNesting} deep`, () => {
    const nested = (depth: number) => `${"(".repeat(depth)}success()${")".repeat(depth)}`;
    assert.ok(parseCondition(nested(maxConditionNesting)).ok);
    assert.ok(parseCondition(`${"!".repeat(maxConditionNesting)}success()`).ok);
    const message = `'(' and '!' nested more than ${maxConditionNesting} deep; a condition never needs that`;
    assert.deepEqual(parseCondition(nested(maxConditionNesting + 1)), { ok: false, offset: maxConditionNesting, message });
    assert.deepEqual(parseCondition(`!(${"!(".repeat(maxConditionNesting)}true`), { ok: false, offset: maxConditionNesting, message });
  });
});
