import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, toJson, type MessageInitShape } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { PipelineSchema } from "@otto/gen/v1/pipeline_pb";
import { pipelineProblems } from "@otto/contracts/pipeline-rules";
import { parsePipeline } from "@otto/parser/parse-pipeline";
import { InvalidPipelineError, pipeline, type PipelineBuilder } from "@otto/sdk";

const yaml = (...lines: string[]): string => lines.join("\n") + "\n";

function parserMessages(text: string): string[] {
  const result = parsePipeline(text);
  assert.ok(!result.ok, "the parser accepted the pipeline");
  assert.ok(result.problems.every((p) => p.line > 0), "every problem has a place in the file");
  return result.problems.map((p) => p.message);
}

function builderMessages(builder: PipelineBuilder): string[] {
  let refused: unknown;
  try {
    builder.build();
  } catch (err) {
    refused = err;
  }
  assert.ok(refused instanceof InvalidPipelineError, `the builder did not refuse the pipeline: ${String(refused)}`);
  assert.equal(refused.message, `invalid pipeline:\n${refused.problems.map((p) => p.message).join("\n")}`);
  return refused.problems.map((p) => p.message);
}

const manySteps = Array.from({ length: 101 }, (_, i) => `echo ${i}`);

// Each the same bad pipeline twice: a file for the parser, and the builder's calls.
const cases: { name: string; text: string; built: () => PipelineBuilder; expected: string[] }[] = [
  {
    name: "a cycle in needs",
    text: yaml("name: x", "jobs:", "  a:", "    needs: [c]", "    steps: [{run: a}]", "  b:", "    needs: [a]", "    steps: [{run: b}]", "  c:", "    needs: [b]", "    steps: [{run: c}]"),
    built: () =>
      pipeline("x").job("a", { needs: ["c"], steps: ["a"] }).job("b", { needs: ["a"], steps: ["b"] }).job("c", { needs: ["b"], steps: ["c"] }),
    expected: ["cycle in needs: a -> c -> b -> a"],
  },
  {
    name: "a need of an unknown job",
    text: yaml("name: x", "jobs:", "  build:", "    steps: [{run: make}]", "  test:", "    needs: [biuld]", "    steps: [{run: make test}]"),
    built: () => pipeline("x").job("build", { steps: ["make"] }).job("test", { needs: ["biuld"], steps: ["make test"] }),
    expected: ["unknown job 'biuld' in needs; did you mean 'build'?"],
  },
  {
    name: "a job defined twice",
    text: yaml("name: x", "jobs:", "  build:", "    steps: [{run: make}]", "  build:", "    steps: [{run: make again}]"),
    built: () => pipeline("x").job("build", { steps: ["make"] }).job("build", { steps: ["make again"] }),
    expected: ["job 'build' is defined twice"],
  },
  {
    name: "a bad job name",
    text: yaml("name: x", "jobs:", "  ../evil:", "    steps: [{run: make}]"),
    built: () => pipeline("x").job("../evil", { steps: ["make"] }),
    expected: ["invalid job name '../evil': use letters, digits, '_' and '-', starting with a letter or '_'"],
  },
  {
    name: "too many steps",
    text: yaml("name: x", "jobs:", "  build:", "    steps:", ...manySteps.map((run) => `      - run: ${run}`)),
    built: () => pipeline("x").job("build", { steps: manySteps }),
    expected: ["job 'build' has 101 steps, at most 100 allowed"],
  },
  {
    name: "a bad duration",
    text: yaml("name: x", "jobs:", "  build:", "    steps:", "      - run: make", "        timeout: 5x"),
    built: () => pipeline("x").job("build", { steps: [{ run: "make", timeout: "5x" }] }),
    expected: ['bad duration "5x": unknown unit "x" (units: ms, s, m, h)'],
  },
  {
    name: "a bad job timeout",
    text: yaml("name: x", "jobs:", "  build:", "    timeout: 1 hour", "    steps: [{run: make}]"),
    built: () => pipeline("x").job("build", { timeout: "1 hour", steps: ["make"] }),
    expected: ['bad duration "1 hour": unknown unit " hour" (units: ms, s, m, h)'],
  },
  {
    name: "an approval asking too much",
    text: yaml("name: x", "jobs:", "  deploy:", `    approval: {message: ${"?".repeat(501)}}`, "    steps: [{run: make}]"),
    built: () => pipeline("x").job("deploy", { approval: { message: "?".repeat(501) }, steps: ["make"] }),
    expected: ["an approval's message is at most 500 characters, got 501"],
  },
  {
    name: "an unknown function in 'if'",
    text: yaml("name: x", "jobs:", "  build:", "    steps: [{run: make}]", "  report:", "    needs: [build]", "    if: failure() || cancelld()", "    steps: [{run: make}]"),
    built: () => pipeline("x").job("build", { steps: ["make"] }).job("report", { needs: ["build"], if: "failure() || cancelld()", steps: ["make"] }),
    expected: ["unknown function 'cancelld'; did you mean 'cancelled'?"],
  },
  {
    name: "several problems at once",
    text: yaml("name: x", "jobs:", "  a:", "    needs: [a, ghost]", "    secrets: [lower]", "    steps: []"),
    built: () => pipeline("x").job("a", { needs: ["a", "ghost"], secrets: ["lower"], steps: [] }),
    expected: [
      "job 'a' needs itself; remove 'a' from its needs",
      "unknown job 'ghost' in needs",
      "invalid secret name 'lower': use upper-case letters, digits and '_', not starting with a digit (at most 128)",
      "job 'a' has no steps; 'steps' needs at least one",
    ],
  },
];

describe("the pipeline rules, one module for the parser, the builder and the coordinator", () => {
  for (const { name, text, built, expected } of cases) {
    test(`${name}: the same messages from the YAML parser and from the SDK's builder`, () => {
      const fromParser = parserMessages(text);
      const fromBuilder = builderMessages(built());
      assert.deepEqual(fromParser.toSorted(), expected.toSorted());
      assert.deepEqual(fromBuilder.toSorted(), expected.toSorted());
    });
  }

  test("the builder's problems have the path of the field they are about", () => {
    let refused: unknown;
    try {
      pipeline("x").job("a", { steps: ["a"] }).job("b", { needs: ["a", "nope"], steps: ["b", { run: "c", timeout: "soon" }] }).build();
    } catch (err) {
      refused = err;
    }
    assert.ok(refused instanceof InvalidPipelineError);
    assert.deepEqual(
      refused.problems.map((p) => p.path),
      [
        ["jobs", 1, "steps", 1, "timeout"],
        ["jobs", 1, "needs", 1],
      ],
    );
  });

  test("an IR made by neither (a curl) is checked by the same rules", () => {
    const ir = create(PipelineSchema, {
      name: "x",
      jobs: [
        { name: "a", needs: ["b"], steps: [{ run: "a" }] },
        { name: "b", needs: ["a"], steps: [{ run: "b" }] },
        { name: "b", steps: [{ run: "again" }], env: { "1X": "y" } },
      ],
    });
    assert.deepEqual(pipelineProblems(ir), [
      { path: ["jobs", 2, "env", "1X"], message: "invalid environment variable name '1X': use letters, digits and '_', not starting with a digit" },
      { path: ["jobs", 2, "name"], message: "job 'b' is defined twice" },
      { path: ["jobs", 1, "needs", 0], message: "cycle in needs: a -> b -> a" },
    ]);
  });

  test("a pipeline the parser accepts, the builder builds", () => {
    const text = yaml("name: ok", "jobs:", "  build:", "    steps:", "      - run: make", "        timeout: 90s", "  test:", "    needs: [build]", "    steps: [{run: make test}]");
    assert.ok(parsePipeline(text).ok);
    const built = pipeline("ok").job("build", { steps: [{ run: "make", timeout: "90s" }] }).job("test", { needs: ["build"], steps: ["make test"] }).build();
    assert.deepEqual(pipelineProblems(built), []);
  });

  test("what pipeline.proto's protovalidate rules refuse, the pipeline rules refuse too, with their own message", () => {
    const validator = createValidator();
    const job = { name: "a", steps: [{ run: "true" }] };
    const bad: [string, MessageInitShape<typeof PipelineSchema>, RegExp][] = [
      ["pipeline name", { name: "n".repeat(201), jobs: [job] }, /the pipeline's name is too long: 201 characters, at most 200/],
      ["jobs", { name: "x", jobs: Array.from({ length: 201 }, (_, i) => ({ ...job, name: `j${i}` })) }, /the pipeline has 201 jobs, at most 200/],
      ["job name", { name: "x", jobs: [{ ...job, name: "a/b" }] }, /invalid job name 'a\/b'/],
      ["job name length", { name: "x", jobs: [{ ...job, name: "j".repeat(65) }] }, /is too long: 65 characters, at most 64/],
      ["env name", { name: "x", jobs: [{ ...job, env: { "A-B": "c" } }] }, /invalid environment variable name 'A-B'/],
      ["needs", { name: "x", jobs: [job, { ...job, name: "b", needs: ["a", "a"] }] }, /job 'a' is listed twice in the needs of 'b'/],
      ["steps", { name: "x", jobs: [{ ...job, steps: Array.from({ length: 101 }, () => ({ run: "true" })) }] }, /has 101 steps, at most 100/],
      ["locks", { name: "x", jobs: [{ ...job, locks: Array.from({ length: 11 }, (_, i) => `l${i}`) }] }, /has 11 locks, at most 10/],
      ["lock name", { name: "x", jobs: [{ ...job, locks: [".hidden"] }] }, /invalid lock name '\.hidden'/],
      ["lock limit", { name: "x", jobs: [{ ...job, locks: ["pool"], lockLimits: { pool: 1001 } }] }, /from 1 to 1000 for the 'limit' of lock 'pool', got 1001/],
      ["secret name", { name: "x", jobs: [{ ...job, secrets: ["lower"] }] }, /invalid secret name 'lower'/],
      ["artifacts", { name: "x", jobs: [{ ...job, artifacts: ["a", "a"] }] }, /artifact 'a' is listed twice/],
      ["retry", { name: "x", jobs: [{ ...job, retry: { max: 11 } }] }, /from 0 to 10 for 'max' in 'retry', got 11/],
      ["exit codes", { name: "x", jobs: [{ ...job, retry: { max: 1, exitCodes: [256] } }] }, /from 0 to 255 in 'exit-codes', got 256/],
      ["cpu", { name: "x", jobs: [{ ...job, resources: { cpu: 1025 } }] }, /at most 1024 for 'cpu', got 1025/],
      ["memory", { name: "x", jobs: [{ ...job, resources: { memoryBytes: -1n } }] }, /bad memory quantity -1: must be more than 0/],
      ["run", { name: "x", jobs: [{ ...job, steps: [{ run: "é".repeat(32_769) }] }] }, /'run' of step 1 of job 'a' is 65538 bytes, at most 65536/],
      ["step name", { name: "x", jobs: [{ ...job, steps: [{ run: "true", name: "s".repeat(201) }] }] }, /the name of step 1 of job 'a' is too long/],
      ["timeout", { name: "x", jobs: [{ ...job, steps: [{ run: "true", timeout: { seconds: -1n } }] }] }, /the timeout of step 1 of job 'a' is negative/],
      ["condition", { name: "x", jobs: [{ ...job, condition: `'${"x".repeat(999)}'` }] }, /the 'if' expression is 1001 characters long, at most 1000/],
    ];
    for (const [what, init, message] of bad) {
      const ir = create(PipelineSchema, init);
      assert.equal(validator.validate(PipelineSchema, ir).kind, "invalid", `protovalidate refuses the ${what}`);
      const messages = pipelineProblems(ir).map((p) => p.message);
      assert.ok(messages.some((m) => message.test(m)), `the rules refuse the ${what}: ${messages.join("; ")}`);
    }
    const good = create(PipelineSchema, {
      name: "x",
      jobs: [job, { ...job, name: "b", needs: ["a"], locks: ["deploy/prod"], secrets: ["TOKEN"], condition: `'${"x".repeat(998)}'` }],
    });
    assert.equal(validator.validate(PipelineSchema, good).kind, "valid");
    assert.deepEqual(pipelineProblems(good), []);
  });
});

describe("locks with a limit", () => {
  test("the builder makes the IR the parser makes", () => {
    const text = yaml("name: x", "jobs:", "  test:", "    locks: [prod, {name: test-db, limit: 3}]", "    steps: [{run: make test}]");
    const result = parsePipeline(text);
    assert.ok(result.ok);
    const built = pipeline("x").job("test", { locks: ["prod", { name: "test-db", limit: 3 }], steps: [{ name: "make test", run: "make test" }] }).build();
    assert.deepEqual(toJson(PipelineSchema, built), toJson(PipelineSchema, result.pipeline));
    assert.deepEqual(built.jobs[0].lockLimits, { "test-db": 3 });
  });

  test("a limit is of a lock the job names: an IR made by neither is refused otherwise, as the builder's", () => {
    const ir = create(PipelineSchema, { name: "x", jobs: [{ name: "a", locks: ["prod"], lockLimits: { pool: 2 }, steps: [{ run: "true" }] }] });
    assert.deepEqual(pipelineProblems(ir), [{ path: ["jobs", 0, "lockLimits", "pool"], message: "a limit is given for lock 'pool', which the job does not name in 'locks'" }]);
    assert.deepEqual(builderMessages(pipeline("x").job("a", { locks: [{ name: "pool", limit: 0 }], steps: ["true"] })), [
      "expected an integer from 1 to 1000 for the 'limit' of lock 'pool', got 0",
    ]);
  });
});

describe("needs without their artifacts ({job, artifacts: false})", () => {
  test("the builder makes the IR the parser makes", () => {
    const text = yaml(
      "name: x",
      "jobs:",
      "  build: {steps: [{run: make}]}",
      "  docs: {steps: [{run: make docs}]}",
      "  test:",
      "    needs: [{job: build, artifacts: false}, docs]",
      "    steps: [{run: make test}]",
    );
    const parsed = parsePipeline(text);
    assert.ok(parsed.ok);
    const built = pipeline("x")
      .job("build", { steps: ["make"] })
      .job("docs", { steps: ["make docs"] })
      .job("test", { needs: [{ job: "build", artifacts: false }, "docs"], steps: ["make test"] })
      .build();
    assert.deepEqual(toJson(PipelineSchema, built), toJson(PipelineSchema, parsed.pipeline));
    assert.deepEqual([built.jobs[2].needs, built.jobs[2].needsWithoutArtifacts], [["build", "docs"], ["build"]]);
    const withArtifacts = pipeline("x").job("a", { steps: ["a"] }).job("b", { needs: [{ job: "a", artifacts: true }], steps: ["b"] }).build();
    assert.deepEqual(withArtifacts.jobs[1].needsWithoutArtifacts, []);
  });

  test("in an IR, each is one of the job's needs, listed once (protovalidate refuses the repeat too)", () => {
    const job = { name: "a", steps: [{ run: "true" }] };
    const ir = create(PipelineSchema, {
      name: "x",
      jobs: [job, { ...job, name: "b", needs: ["a"], needsWithoutArtifacts: ["ghost", "a", "a"] }],
    });
    assert.deepEqual(pipelineProblems(ir), [
      { path: ["jobs", 1, "needsWithoutArtifacts", 0], message: "job 'b' goes without the artifacts of 'ghost', which is not among its needs" },
      { path: ["jobs", 1, "needsWithoutArtifacts", 2], message: "job 'a' is listed twice in the needs without artifacts of 'b'" },
    ]);
    assert.equal(createValidator().validate(PipelineSchema, ir).kind, "invalid");
    assert.throws(
      () => pipeline("x").job("a", { steps: ["a"] }).job("b", { needs: [{ job: "a", artifacts: false }, { job: "a", artifacts: false }], steps: ["b"] }).build(),
      /job 'a' is listed twice in the needs of 'b'/,
    );
  });
});
