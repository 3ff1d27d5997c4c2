import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { toJson } from "@bufbuild/protobuf";
import { PipelineJobSchema, PipelineSchema } from "@otto/gen/v1/pipeline_pb";
import type { Pipeline } from "@otto/gen/v1/pipeline_pb";
import { parseDuration } from "@otto/contracts/duration";
import { formatProblems, parsePipeline } from "@otto/parser/parse-pipeline";
import type { PipelineProblemInfo } from "@otto/parser/parse-pipeline";
import { parseQuantity } from "@otto/contracts/quantity";

/** One YAML line per argument, so that line N of the file is argument N. */
const yaml = (...lines: string[]): string => lines.join("\n") + "\n";

function parsed(text: string): Pipeline {
  const result = parsePipeline(text);
  assert.ok(result.ok, `unexpected problems:\n${result.ok ? "" : formatProblems(result.problems, "test.yaml")}`);
  return result.pipeline;
}

function problems(text: string): PipelineProblemInfo[] {
  const result = parsePipeline(text);
  assert.ok(!result.ok, "expected problems, but the pipeline parsed");
  return result.problems;
}

/** Problems as [line, column, message], in the order parsePipeline returns them. */
function assertProblems(text: string, expected: [number, number, string][]): void {
  assert.deepEqual(
    problems(text).map((p) => [p.line, p.column, p.message]),
    expected,
  );
}

describe("parsePipeline: valid files", () => {
  test("the example pipeline becomes the expected IR", () => {
    const pipeline = parsed(
      yaml(
        "name: hello",
        "jobs:",
        "  build:",
        "    runs-on: [linux]          # agent labels; all must match. A single string is also accepted.",
        "    env: { GREETING: hi }     # string values; numbers/booleans are converted to their text",
        "    steps:",
        "      - name: compile",
        '        run: echo "$GREETING from $(hostname)"',
        "      - run: ./make.sh",
        "        timeout: 2m",
        '        env: {X: "1"}',
        "  test:",
        "    needs: [build]            # a DAG (a single string also accepted)",
        "    steps:",
        "      - run: echo testing",
      ),
    );
    // toJson leaves out unset fields, so this also checks that nothing else is set.
    assert.deepEqual(toJson(PipelineSchema, pipeline), {
      name: "hello",
      jobs: [
        {
          name: "build",
          runsOn: ["linux"],
          env: { GREETING: "hi" },
          steps: [
            { name: "compile", run: 'echo "$GREETING from $(hostname)"' },
            { name: "./make.sh", run: "./make.sh", timeout: "120s", env: { X: "1" } },
          ],
        },
        { name: "test", needs: ["build"], steps: [{ name: "echo testing", run: "echo testing" }] },
      ],
    });
    const [build, testJob] = pipeline.jobs;
    assert.equal(build.steps[0].timeout, undefined);
    assert.equal(build.steps[1].timeout?.seconds, 120n);
    assert.equal(build.steps[1].timeout?.nanos, 0);
    assert.deepEqual(testJob.runsOn, []);
    assert.deepEqual(testJob.env, {});
  });

  test("single strings, scalar env values as written, derived names, file order, fractional timeouts", () => {
    const pipeline = parsed(
      yaml(
        "name: variants",
        "jobs:",
        "  zeta:",
        "    runs-on: linux",
        '    env: {N: 1.50, B: true, H: 0x1F, S: "x y", E: ""}',
        "    steps:",
        "      - run: |",
        "          make all",
        "          make install",
        '      - run: "   echo this line is longer than forty characters, so it is cut   "',
        "        timeout: 1.5h",
        "  alpha:",
        "    needs: zeta",
        "    runs-on: [linux, arm64]",
        "    steps:",
        "      - name: quick",
        "        run: echo ok",
        "        timeout: 500ms",
      ),
    );
    assert.deepEqual(toJson(PipelineSchema, pipeline), {
      name: "variants",
      jobs: [
        {
          name: "zeta",
          runsOn: ["linux"],
          env: { N: "1.50", B: "true", H: "0x1F", S: "x y", E: "" },
          steps: [
            { name: "make all", run: "make all\nmake install\n" },
            {
              name: "echo this line is longer than forty char",
              run: "   echo this line is longer than forty characters, so it is cut   ",
              timeout: "5400s",
            },
          ],
        },
        {
          name: "alpha",
          runsOn: ["linux", "arm64"],
          needs: ["zeta"],
          steps: [{ name: "quick", run: "echo ok", timeout: "0.500s" }],
        },
      ],
    });
    assert.equal(pipeline.jobs[1].steps[0].timeout?.nanos, 500_000_000);
  });

  test("aliases are followed and a 64-character job name is accepted", () => {
    const longest = "j".repeat(64);
    const pipeline = parsed(
      yaml(
        "name: anchors",
        "jobs:",
        `  ${longest}:`,
        '    env: &common {A: "1"}',
        "    steps: [{run: make, env: *common}]",
      ),
    );
    assert.equal(pipeline.jobs[0].name, longest);
    assert.deepEqual(pipeline.jobs[0].steps[0].env, { A: "1" });
  });
});

describe("parsePipeline: retry, locks and resources", () => {
  test("a job with all three becomes the expected IR; a job without them leaves them unset", () => {
    const pipeline = parsed(
      yaml(
        "name: release",
        "jobs:",
        "  deploy:",
        "    retry: { max: 2, exit-codes: [75, 1], agent-lost: true }",
        "    locks: [prod-db, deploy-env]",
        "    resources: { cpu: 1.5, memory: 512Mi }",
        "    steps: [{run: ./deploy.sh}]",
        "  plain:",
        "    steps: [{run: make}]",
      ),
    );
    assert.deepEqual(toJson(PipelineSchema, pipeline), {
      name: "release",
      jobs: [
        {
          name: "deploy",
          retry: { max: 2, exitCodes: [75, 1], agentLost: true },
          locks: ["prod-db", "deploy-env"],
          resources: { cpu: 1.5, memoryBytes: "536870912" },
          steps: [{ name: "./deploy.sh", run: "./deploy.sh" }],
        },
        { name: "plain", steps: [{ name: "make", run: "make" }] },
      ],
    });
    const [deploy, plain] = pipeline.jobs;
    assert.equal(deploy.retry?.max, 2);
    assert.deepEqual(deploy.retry?.exitCodes, [75, 1]);
    assert.equal(deploy.retry?.agentLost, true);
    assert.deepEqual(deploy.locks, ["prod-db", "deploy-env"]);
    assert.equal(deploy.resources?.cpu, 1.5);
    assert.equal(deploy.resources?.memoryBytes, 536_870_912n);
    assert.equal(plain.retry, undefined);
    assert.deepEqual(plain.locks, []);
    assert.equal(plain.resources, undefined);
  });

  test("shorthands and partial forms: retry: 3, a single lock, a single exit code, one resource", () => {
    const pipeline = parsed(
      yaml(
        "name: short",
        "jobs:",
        "  a:",
        "    retry: 3",
        "    locks: deploy-env",
        "    resources: {memory: 2G}",
        "    steps: [{run: a}]",
        "  b:",
        "    retry:",
        "      max: 0",
        "      exit-codes: 75",
        "      agent-lost: false",
        "    resources:",
        "      cpu: 2",
        "    steps: [{run: b}]",
        "  c:",
        "    retry: {max: 1}",
        "    resources: {}",
        "    steps: [{run: c}]",
      ),
    );
    const [a, b, c] = pipeline.jobs;
    assert.deepEqual(toJson(PipelineJobSchema, a), {
      name: "a",
      retry: { max: 3 },
      locks: ["deploy-env"],
      resources: { memoryBytes: "2000000000" },
      steps: [{ name: "a", run: "a" }],
    });
    assert.equal(a.retry?.max, 3);
    assert.deepEqual(a.retry?.exitCodes, []);
    assert.equal(a.retry?.agentLost, undefined);
    assert.equal(a.resources?.cpu, 0);
    assert.equal(a.resources?.memoryBytes, 2_000_000_000n);

    assert.ok(b.retry !== undefined, "retry: {max: 0} is set, not left out");
    assert.equal(b.retry.max, 0);
    assert.deepEqual(b.retry.exitCodes, [75]);
    assert.equal(b.retry.agentLost, false, "agent-lost: false is kept as written");
    assert.equal(b.resources?.cpu, 2);
    assert.equal(b.resources?.memoryBytes, 0n);

    assert.equal(c.retry?.max, 1);
    assert.equal(c.retry?.agentLost, undefined);
    assert.ok(c.resources !== undefined, "resources: {} is set, with no requirement");
    assert.equal(c.resources.cpu, 0);
    assert.equal(c.resources.memoryBytes, 0n);
  });

  test("limits are inclusive: retry 10, exit codes 0 and 255, 10 locks, a 100-character lock name, 1024 cores", () => {
    const longest = "L" + "a._/-9".repeat(16) + "end";
    assert.equal(longest.length, 100);
    const ten = ["a", "B", "7z", "x.y", "x_y", "x/y", "x-y", "9lives", "env/prod", longest];
    const pipeline = parsed(
      yaml(
        "name: limits",
        "jobs:",
        "  big:",
        "    retry: {max: 10, exit-codes: [0, 255]}",
        `    locks: [${ten.join(", ")}]`,
        "    resources: {cpu: 1024, memory: 1}",
        "    steps: [{run: a}]",
        "  small:",
        "    retry: 0",
        "    resources: {cpu: 0.001, memory: 0.5Ki}",
        "    steps: [{run: a}]",
      ),
    );
    const [big, small] = pipeline.jobs;
    assert.equal(big.retry?.max, 10);
    assert.deepEqual(big.retry?.exitCodes, [0, 255]);
    assert.deepEqual(big.locks, ten);
    assert.equal(big.resources?.cpu, 1024);
    assert.equal(big.resources?.memoryBytes, 1n);
    assert.equal(small.retry?.max, 0);
    assert.equal(small.resources?.cpu, 0.001);
    assert.equal(small.resources?.memoryBytes, 512n);
  });

  test("a lock with a limit: a mapping with 'name' and 'limit' among the names", () => {
    const [a, b] = parsed(
      yaml(
        "name: shared",
        "jobs:",
        "  a:",
        "    locks: [prod, {name: test-db, limit: 3}, {name: solo, limit: 1}]",
        "    steps: [{run: a}]",
        "  b:",
        "    locks: {name: test-db, limit: 1000}",
        "    steps: [{run: b}]",
      ),
    ).jobs;
    assert.deepEqual(a.locks, ["prod", "test-db", "solo"]);
    assert.deepEqual(a.lockLimits, { "test-db": 3 }, "a limit of 1 is a lock held alone");
    assert.deepEqual(b.locks, ["test-db"]);
    assert.deepEqual(b.lockLimits, { "test-db": 1000 });
  });

  test("bad locks with limits, at the value", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  a:",
        "    locks: [{name: pool, limit: 0}, {name: pool2, limit: 1001}, {name: pool3, limit: two}]",
        "    steps: [{run: a}]",
        "  b:",
        "    locks: [{limit: 2}, {name: p, limit: 2, size: 1}, 7]",
        "    steps: [{run: b}]",
      ),
      [
        [4, 33, "expected an integer from 1 to 1000 for 'limit' in 'locks', got a number (0)"],
        [4, 58, "expected an integer from 1 to 1000 for 'limit' in 'locks', got a number (1001)"],
        [4, 86, `expected an integer from 1 to 1000 for 'limit' in 'locks', got a string ("two")`],
        [7, 13, "a lock of job 'b' is missing required key 'name'"],
        [7, 45, "unknown key 'size' in a lock of job 'b'; expected one of 'name', 'limit'"],
        [7, 55, `expected a string in 'locks', got a number (7); quote it if you mean the text: "7"`],
      ],
    );
  });

  test("bad retry policies, at the value", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  a:",
        "    retry: 11",
        "    steps: [{run: a}]",
        "  b:",
        '    retry: "2"',
        "    steps: [{run: b}]",
        "  c:",
        "    retry: [1]",
        "    steps: [{run: c}]",
        "  d:",
        "    retry:",
        "      max: 1.5",
        "      exit-codes: [75, 256, -1, '3', 2.0]",
        "      agent-lost: yes",
        "    steps: [{run: d}]",
        "  e:",
        "    retry: {max: -1, exit-codes: {a: 1}}",
        "    steps: [{run: e}]",
        "  f:",
        "    retry: {max: 2, exit-codes: 300}",
        "    steps: [{run: f}]",
      ),
      [
        [4, 12, "expected an integer from 0 to 10 or a mapping with 'max' for 'retry', got a number (11)"],
        [7, 12, `expected an integer from 0 to 10 or a mapping with 'max' for 'retry', got a string ("2"); write it without quotes`],
        [10, 12, "expected an integer from 0 to 10 or a mapping with 'max' for 'retry', got a list"],
        [14, 12, "expected an integer from 0 to 10 for 'max' in 'retry', got a number (1.5)"],
        [15, 24, "expected an integer from 0 to 255 in 'exit-codes', got a number (256)"],
        [15, 29, "expected an integer from 0 to 255 in 'exit-codes', got a number (-1)"],
        [15, 33, `expected an integer from 0 to 255 in 'exit-codes', got a string ("3"); write it without quotes`],
        [15, 38, "expected an integer from 0 to 255 in 'exit-codes', got a number (2.0)"],
        [16, 19, `expected true or false for 'agent-lost', got a string ("yes")`],
        [19, 18, "expected an integer from 0 to 10 for 'max' in 'retry', got a number (-1)"],
        [19, 34, "expected an integer from 0 to 255 or a list of them for 'exit-codes', got a mapping"],
        [22, 33, "expected an integer from 0 to 255 or a list of them for 'exit-codes', got a number (300)"],
      ],
    );
  });

  test("retry keys: unknown ones with a suggestion, a missing max, a missing value at its key", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  a:",
        "    retry: {max: 1, exit_codes: [1], agent-lots: true, backoff: 5s}",
        "    steps: [{run: a}]",
        "  b:",
        "    retry: {exit-codes: [1]}",
        "    steps: [{run: b}]",
        "  c:",
        "    retry:",
        "    steps: [{run: c}]",
        "  d:",
        "    retry:",
        "      max:",
        "    steps: [{run: d}]",
      ),
      [
        [4, 21, "unknown key 'exit_codes' in 'retry' of job 'a'; did you mean 'exit-codes'?"],
        [4, 38, "unknown key 'agent-lots' in 'retry' of job 'a'; did you mean 'agent-lost'?"],
        [4, 56, "unknown key 'backoff' in 'retry' of job 'a'; expected one of 'max', 'exit-codes', 'agent-lost'"],
        [7, 12, "'retry' of job 'b' is missing required key 'max'"],
        [10, 5, "expected an integer from 0 to 10 or a mapping with 'max' for 'retry', got nothing"],
        [14, 7, "expected an integer from 0 to 10 for 'max' in 'retry', got nothing"],
      ],
    );
  });

  test("bad locks: invalid, too long, repeated (at the repeat), too many (at the first extra), wrong types", () => {
    const long = "a".repeat(101);
    const eleven = Array.from({ length: 11 }, (_, i) => `l${i}`);
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  a:",
        `    locks: [prod-db, "prod db", -x, .hidden, "", 5, ${long}, deploy-env, prod-db, deploy-env]`,
        "    steps: [{run: a}]",
        "  b:",
        "    locks:",
        ...eleven.map((lock) => `      - ${lock}`),
        "      - l0",
        "    steps: [{run: b}]",
        "  c:",
        "    locks: {prod-db: true}",
        "    steps: [{run: c}]",
        "  d:",
        "    locks: ü",
        "    steps: [{run: d}]",
        "  e:",
        '    locks: " "',
        "    steps: [{run: e}]",
      ),
      [
        [4, 22, "invalid lock name 'prod db': use letters, digits, '.', '_', '/' and '-', starting with a letter or digit"],
        [4, 33, "invalid lock name '-x': use letters, digits, '.', '_', '/' and '-', starting with a letter or digit"],
        [4, 37, "invalid lock name '.hidden': use letters, digits, '.', '_', '/' and '-', starting with a letter or digit"],
        [4, 46, "expected a non-empty string in 'locks', got an empty string"],
        [4, 50, `expected a string in 'locks', got a number (5); quote it if you mean the text: "5"`],
        [4, 53, `lock name '${long}' is too long: 101 characters, at most 100 allowed`],
        [4, 168, "lock 'prod-db' is listed twice in the locks of job 'a'"],
        [4, 177, "lock 'deploy-env' is listed twice in the locks of job 'a'"],
        [18, 9, "job 'b' has 11 locks, at most 10 allowed"],
        [19, 9, "lock 'l0' is listed twice in the locks of job 'b'"],
        // A mapping on its own is one lock with a limit, as in a list.
        [22, 12, "a lock of job 'c' is missing required key 'name'"],
        [22, 13, "unknown key 'prod-db' in a lock of job 'c'; expected one of 'name', 'limit'"],
        [25, 12, "invalid lock name 'ü': use letters, digits, '.', '_', '/' and '-', starting with a letter or digit"],
        [28, 12, "expected a non-empty string for 'locks', got an empty string"],
      ],
    );
  });

  test("bad resources, at the value", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  a:",
        "    resources: {cpu: 0, memory: 0Mi}",
        "    steps: [{run: a}]",
        "  b:",
        "    resources:",
        "      cpu: 1025",
        "      memory: 512MB",
        "    steps: [{run: b}]",
        "  c:",
        '    resources: {cpu: 500m, memory: 1.5, cores: 2}',
        "    steps: [{run: c}]",
        "  d:",
        '    resources: {cpu: "2", memory: 8388608Ti}',
        "    steps: [{run: d}]",
        "  e:",
        "    resources: {cpu: -1, memory: [512Mi]}",
        "    steps: [{run: e}]",
        "  f:",
        "    resources: 2",
        "    steps: [{run: f}]",
        "  g:",
        "    resources: {cpu: .nan, memory: -1Gi, mem: 1}",
        "    steps: [{run: g}]",
      ),
      [
        [4, 22, "expected a number of cores above 0 and at most 1024 for 'cpu', got a number (0)"],
        [4, 33, `bad memory quantity "0Mi": must be more than 0; leave 'memory' out for no requirement`],
        [8, 12, "expected a number of cores above 0 and at most 1024 for 'cpu', got a number (1025)"],
        [9, 15, `bad memory quantity "512MB": unknown unit "MB" (units: Ki, Mi, Gi, Ti, K, M, G, T)`],
        [12, 22, `expected a number of cores above 0 and at most 1024 for 'cpu', got a string ("500m"); write 0.5 for "500m"`],
        [12, 36, `bad memory quantity "1.5": bytes must be a whole number; add a unit, e.g. "1.5Gi" (units: Ki, Mi, Gi, Ti, K, M, G, T)`],
        [12, 41, "unknown key 'cores' in 'resources' of job 'c'; expected one of 'cpu', 'memory'"],
        [15, 22, `expected a number of cores above 0 and at most 1024 for 'cpu', got a string ("2"); write it without quotes`],
        [15, 35, `bad memory quantity "8388608Ti": too large, the limit is 9223372036854775807 bytes (just under 8388608Ti)`],
        [18, 22, "expected a number of cores above 0 and at most 1024 for 'cpu', got a number (-1)"],
        [18, 34, `expected a quantity such as "512Mi" or "2G" for 'memory', got a list`],
        [21, 16, "expected a mapping with 'cpu' and 'memory' for 'resources', got a number (2)"],
        [24, 22, "expected a number of cores above 0 and at most 1024 for 'cpu', got a number (.nan)"],
        [24, 36, `bad memory quantity "-1Gi": must be more than 0`],
        [24, 42, "unknown key 'mem' in 'resources' of job 'g'; expected one of 'cpu', 'memory'"],
      ],
    );
  });

  test("unknown job keys are checked against the new keys too", () => {
    assertProblems(yaml("name: x", "jobs:", "  a:", "    lock: db", "    resource: {cpu: 1}", "    deadline: 5m", "    steps: [{run: a}]"), [
      [4, 5, "unknown key 'lock' in job 'a'; did you mean 'locks'?"],
      [5, 5, "unknown key 'resource' in job 'a'; did you mean 'resources'?"],
      [6, 5, "unknown key 'deadline' in job 'a'; expected one of 'runs-on', 'env', 'needs', 'if', 'retry', 'locks', 'resources', 'secrets', 'artifacts', 'checkout', 'timeout', 'approval', 'matrix', 'steps'"],
    ]);
  });
});

describe("parsePipeline: job timeout", () => {
  test("timeout on a job is a duration; anything else is refused where it is written", () => {
    const p = parsed(yaml("name: x", "jobs:", "  a:", "    timeout: 1h30m", "    steps: [{run: a}]"));
    assert.equal(p.jobs[0].timeout?.seconds, 5400n);
    assertProblems(yaml("name: x", "jobs:", "  a:", "    timeout: 90", "    steps: [{run: a}]"), [[4, 14, `bad duration "90": add a unit, e.g. "90s" (units: ms, s, m, h)`]]);
  });
});

describe("parsePipeline: approval", () => {
  test("approval: true, false, or a question and a timeout; anything else is refused where it is written", () => {
    const p = parsed(
      yaml("name: x", "jobs:", "  a:", "    approval: true", "    steps: [{run: a}]", "  b:", "    approval: {message: Ship it?, timeout: 24h}", "    steps: [{run: b}]", "  c:", "    approval: false", "    steps: [{run: c}]"),
    );
    assert.deepEqual([p.jobs[0].approval?.message, p.jobs[0].approval?.timeout], ["", undefined]);
    assert.deepEqual([p.jobs[1].approval?.message, p.jobs[1].approval?.timeout?.seconds], ["Ship it?", 86400n]);
    assert.equal(p.jobs[2].approval, undefined);
    assertProblems(yaml("name: x", "jobs:", "  a:", "    approval: yes please", "    steps: [{run: a}]", "  b:", "    approval: {mesage: hi, timeout: soon}", "    steps: [{run: b}]"), [
      [4, 15, `expected true, false or a mapping with 'message' and 'timeout' for 'approval', got a string ("yes please")`],
      [7, 16, "unknown key 'mesage' in 'approval' of job 'b'; did you mean 'message'?"],
      [7, 37, `bad duration "soon": expected a number followed by a unit, e.g. "90s" or "1h30m" (units: ms, s, m, h)`],
    ]);
  });
});

describe("parsePipeline: checkout", () => {
  test("checkout: false keeps a project's job from checking out its commit; unset, it does; anything else is refused", () => {
    const p = parsed(yaml("name: x", "jobs:", "  a:", "    checkout: false", "    steps: [{run: a}]", "  b:", "    steps: [{run: b}]"));
    assert.equal(p.jobs[0].checkout, false);
    assert.equal(p.jobs[1].checkout, undefined);
    assertProblems(yaml("name: x", "jobs:", "  a:", "    checkout: no-thanks", "    steps: [{run: a}]"), [
      [4, 15, `expected true or false for 'checkout', got a string ("no-thanks")`],
    ]);
  });
});

describe("parsePipeline: secrets and hostile YAML", () => {
  test("secrets: a list of environment variable names, each once", () => {
    const p = parsed(yaml("name: x", "jobs:", "  a:", "    secrets: [DEPLOY_KEY, NPM_TOKEN]", "    steps: [{run: a}]"));
    assert.deepEqual(p.jobs[0].secrets, ["DEPLOY_KEY", "NPM_TOKEN"]);
    assert.deepEqual(parsed(yaml("name: x", "jobs:", "  a:", "    secrets: ONE", "    steps: [{run: a}]")).jobs[0].secrets, ["ONE"]);
    assertProblems(yaml("name: x", "jobs:", "  a:", "    secrets: [deploy-key, A, A]", "    steps: [{run: a}]"), [
      [4, 15, "invalid secret name 'deploy-key': use upper-case letters, digits and '_', not starting with a digit (at most 128)"],
      [4, 30, "secret 'A' is listed twice in the secrets of job 'a'"],
    ]);
  });

  test("deep nesting is refused before the YAML parser recurses into it", () => {
    const deep = `name: x\njobs:\n  a:\n    env: ${"[".repeat(5000)}${"]".repeat(5000)}\n    steps: [{run: a}]\n`;
    assertProblems(deep, [[4, 42, "[ ] and { } nested more than 32 deep; pipelines never need that"]]);
    const indented = `name: x\njobs:\n${Array.from({ length: 100 }, (_, i) => `${"  ".repeat(i + 1)}k${i}:`).join("\n")}\n`;
    assert.match(problems(indented)[0].message, /^indented more than 160 columns/);
  });

  test("more than 100 aliases are refused (no alias bombs)", () => {
    const anchors = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i <= 12; i++) anchors.push(`l${i}: &l${i} [${Array(9).fill(i === 1 ? "*a" : `*l${i - 1}`).join(", ")}]`);
    const bomb = ["name: x", "jobs:", "  a:", "    env:", ...anchors.map((line) => `      ${line}`), "    steps: [{run: a}]"].join("\n");
    const found = problems(bomb);
    assert.equal(found.length, 1, JSON.stringify(found));
    assert.match(found[0].message, /more than 100 aliases/);
  });

  // A list of steps anchored once and reused by 98 jobs: 200 KB of text that
  // would be a 20 MB IR.
  const stepsBomb = (aliases: number) =>
    yaml(
      "name: bomb",
      "jobs:",
      "  base:",
      "    steps: &s",
      ...Array.from({ length: 100 }, (_, i) => `      - run: echo ${i} ${"x".repeat(2000)}`),
      ...Array.from({ length: aliases }, (_, i) => `  j${i}:\n    steps: *s`),
    );

  test("aliases within their limit that expand past 1 MiB of text are refused as too large, at the alias that crosses it", () => {
    const text = stepsBomb(98);
    assert.ok(text.length < 256 * 1024);
    const result = parsePipeline(text);
    assert.ok(!result.ok && result.tooLarge, "refused for its size");
    // 100 steps of about 2 KB are about 200 KB: the sixth copy (the fifth alias, at line 106 + 2 * 4) crosses 1 MiB
    assert.deepEqual(
      result.problems.map((p) => [p.line, p.column, p.message]),
      [[114, 12, "with each alias counted as a copy of its anchor, the pipeline grows past 1 MiB of text here; a pipeline needs far less"]],
    );
    // four copies are fine
    assert.equal(parsed(stepsBomb(4)).jobs.length, 5);
  });

  test("aliases of aliases past 200000 nodes are refused as too large", () => {
    const anchors = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i <= 6; i++) anchors.push(`l${i}: &l${i} [${Array(10).fill(i === 1 ? "*a" : `*l${i - 1}`).join(", ")}]`);
    const bomb = yaml("name: x", "jobs:", "  a:", "    env:", ...anchors.map((line) => `      ${line}`), "    steps: [{run: a}]");
    const result = parsePipeline(bomb);
    assert.ok(!result.ok && result.tooLarge, "refused for its size");
    assert.equal(result.problems.length, 1);
    assert.match(result.problems[0].message, /grows past 200000 YAML nodes here/);
    assert.equal(result.problems[0].line, 10, "at the line of the alias that crosses the limit");
  });

  test("an IR past 1 MiB is refused as too large, even when the text is within its limit", () => {
    // "é" is one character of text but two bytes of the IR; each run is within its 64 KiB
    const text = yaml("name: x", "jobs:", "  a:", "    steps:", `      - run: &r ${"é".repeat(30_000)}`, ...Array(19).fill("      - run: *r"));
    const result = parsePipeline(text);
    assert.ok(!result.ok && result.tooLarge, "refused for its size");
    assert.deepEqual(result.problems.map((p) => [p.line, p.column]), [[0, 0]]);
    assert.match(result.problems[0].message, /^the pipeline's IR would be 12\d{5} bytes, more than the 1 MiB allowed$/);
  });

  test("an alias inside its own anchor is not followed for ever", () => {
    const found = problems(yaml("name: x", "jobs: &j", "  a:", "    steps: [*j]"));
    assert.ok(found.length > 0);
    assert.match(found[0].message, /^unknown key 'a' in step 1 of job 'a'/);
  });

  test("a pipeline without aliases is never too large for the expansion limits, however many nodes its 256 KiB hold", () => {
    const text = yaml("name: x", "jobs:", "  a:", `    env: {A: [${Array(130_000).fill("x").join(",")}]}`, "    steps: [{run: a}]");
    assert.ok(text.length <= 256 * 1024);
    const result = parsePipeline(text);
    assert.ok(!result.ok && !result.tooLarge);
  });
});

describe("parsePipeline: problems, each at its line and column", () => {
  test("YAML syntax errors are all reported, and nothing else is checked", () => {
    assertProblems(yaml("name: x", "jobs: a: b", "colour: red", "other: c: d"), [
      [2, 7, "invalid YAML: nested mappings are not allowed in compact mappings"],
      [4, 8, "invalid YAML: nested mappings are not allowed in compact mappings"],
    ]);
    assertProblems(yaml("name: x", "jobs:", "\tbuild: 1"), [[3, 1, "invalid YAML: tabs are not allowed as indentation"]]);
  });

  test("the document must be a mapping", () => {
    assertProblems(yaml("- a", "- b"), [[1, 1, "expected a mapping with 'name' and 'jobs' at the top level, got a list"]]);
    assertProblems(yaml("", "hello"), [[2, 1, `expected a mapping with 'name' and 'jobs' at the top level, got a string ("hello")`]]);
    assertProblems("", [[0, 0, "the pipeline file is empty; expected a mapping with 'name' and 'jobs'"]]);
    assertProblems(yaml("# only a comment"), [[0, 0, "the pipeline file is empty; expected a mapping with 'name' and 'jobs'"]]);
  });

  test("unknown keys, at the key, with a suggestion when one is close", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  build:",
        "    runs_on: linux",
        "    steps:",
        "      - run: make",
        "        tiemout: 1m",
        "        shell: bash",
        "version: 1",
      ),
      [
        [4, 5, "unknown key 'runs_on' in job 'build'; did you mean 'runs-on'?"],
        [7, 9, "unknown key 'tiemout' in step 1 of job 'build'; did you mean 'timeout'?"],
        [8, 9, "unknown key 'shell' in step 1 of job 'build'; expected one of 'name', 'run', 'timeout', 'env'"],
        [9, 1, "unknown key 'version' at the top level; expected one of 'name', 'concurrency', 'jobs'"],
      ],
    );
  });

  test("missing required keys, at the mapping that lacks them", () => {
    assertProblems(
      yaml(
        "jobs:",
        "  build:",
        "    runs-on: linux",
        "  test:",
        "    steps:",
        "      - name: no command",
        "  deploy: {}",
      ),
      [
        [1, 1, "the pipeline is missing required key 'name'"],
        [3, 5, "job 'build' is missing required key 'steps'"],
        [6, 9, "step 1 of job 'test' is missing required key 'run'"],
        [7, 11, "job 'deploy' is missing required key 'steps'"],
      ],
    );
    assertProblems(yaml("# a comment", "name: x"), [[2, 1, "the pipeline is missing required key 'jobs'"]]);
  });

  test("wrong types, at the value", () => {
    assertProblems(
      yaml(
        "name: [x]",
        "jobs:",
        "  build:",
        "    runs-on: {os: linux}",
        "    needs: 3",
        "    env: [A]",
        "    steps:",
        "      - run: 42",
        "        name: true",
        "        timeout: [1m]",
        "        env: {A: {b: c}}",
        "      - echo hi",
        "  test: hello",
      ),
      [
        [1, 7, "expected a string for 'name', got a list"],
        [4, 14, "expected a string or a list of strings for 'runs-on', got a mapping"],
        [5, 12, "expected a job's name, a mapping with 'job' and 'artifacts', or a list of them for 'needs', got a number (3)"],
        [6, 10, "expected a mapping of variable names to values for 'env', got a list"],
        [8, 14, `expected a string for 'run', got a number (42); quote it if you mean the text: "42"`],
        [9, 15, `expected a string for 'name', got a boolean (true); quote it if you mean the text: "true"`],
        [10, 18, `expected a duration such as "90s" or "1h30m" for 'timeout', got a list`],
        [11, 18, "expected a string for environment variable 'A', got a mapping"],
        [12, 9, `expected a mapping with 'run' for step 2 of job 'build', got a string ("echo hi"); write '- run: echo hi'`],
        [13, 9, `expected a mapping with 'steps' for job 'test', got a string ("hello")`],
      ],
    );
  });

  test("a missing value is reported at its key", () => {
    assertProblems(yaml("name: x", "jobs:"), [[2, 1, "expected a mapping of job names to jobs for 'jobs', got nothing"]]);
    assertProblems(
      yaml(
        'name: ""',
        "jobs:",
        "  build:",
        "  test:",
        "    steps:",
        "      - run: make",
        "        env:",
        "          A:",
      ),
      [
        [1, 7, "expected a non-empty string for 'name', got an empty string"],
        [3, 3, "expected a mapping with 'steps' for job 'build', got nothing"],
        [8, 11, `expected a string for environment variable 'A', got nothing; write A: "" for an empty value`],
      ],
    );
  });

  test("empty jobs and empty steps", () => {
    assertProblems(yaml("name: x", "jobs: {}"), [[2, 7, "'jobs' is empty; define at least one job"]]);
    assertProblems(yaml("name: x", "jobs:", "  build:", "    steps: []", "  test:", "    steps:"), [
      [4, 12, "job 'build' has no steps; 'steps' needs at least one"],
      [6, 5, "expected a list of steps for 'steps' in job 'test', got nothing"],
    ]);
  });

  test("unknown, self and duplicate needs, at the needs entry", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  build:",
        "    steps: [{run: make}]",
        "  test:",
        "    needs: [biuld, test, build, deploy, build]",
        "    steps: [{run: make test}]",
      ),
      [
        [6, 13, "unknown job 'biuld' in needs; did you mean 'build'?"],
        [6, 20, "job 'test' needs itself; remove 'test' from its needs"],
        [6, 33, "unknown job 'deploy' in needs"],
        [6, 41, "job 'build' is listed twice in the needs of 'test'"],
      ],
    );
  });

  test("each cycle in needs is reported once, at the entry that closes it", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  a:",
        "    needs: b",
        "    steps: [{run: x}]",
        "  b:",
        "    needs:",
        "      - c",
        "    steps: [{run: x}]",
        "  c:",
        "    needs: [a, d]",
        "    steps: [{run: x}]",
        "  d:",
        "    needs: [d2]",
        "    steps: [{run: x}]",
        "  d2:",
        "    needs: [d]",
        "    steps: [{run: x}]",
      ),
      [
        [11, 13, "cycle in needs: a -> b -> c -> a"],
        [17, 13, "cycle in needs: d -> d2 -> d"],
      ],
    );
  });

  test("bad durations, at the value", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  build:",
        "    steps:",
        "      - run: a",
        "        timeout: 10",
        "      - run: b",
        "        timeout: 1h30",
        "      - {run: c, timeout: 2d}",
      ),
      [
        [6, 18, 'bad duration "10": add a unit, e.g. "10s" (units: ms, s, m, h)'],
        [8, 18, 'bad duration "1h30": add a unit after "30" (units: ms, s, m, h)'],
        [9, 27, 'bad duration "2d": unknown unit "d" (units: ms, s, m, h)'],
      ],
    );
  });

  test("duplicate keys, at the repeated key, in flow and block mappings", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  build:",
        "    steps: [{run: make, run: again}]",
        "  build:",
        "    steps: [{run: make}]",
        "name: y",
      ),
      [
        [4, 25, "duplicate key 'run'; it is already defined at line 4, column 14"],
        [5, 3, "job 'build' is defined twice"], // a pipeline rule, worded as the SDK's builder says it
        [7, 1, "duplicate key 'name'; it is already defined at line 1, column 1"],
      ],
    );
    // After a key without a value, yaml itself would place the error at the end of the previous line.
    assertProblems(yaml("name: x", "jobs:", "  build:", "    steps: [{run: make}]", "    env:", "    env: {A: b}"), [
      [5, 5, "expected a mapping of variable names to values for 'env', got nothing"],
      [6, 5, "duplicate key 'env'; it is already defined at line 5, column 5"],
    ]);
  });

  test("invalid job and environment variable names, at the name", () => {
    const long = "a".repeat(65);
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  9lives:",
        "    steps: [{run: x}]",
        `  ${long}:`,
        "    steps: [{run: x}]",
        "  ok:",
        "    env: {my-var: 1, _OK: 2}",
        "    steps: [{run: x}]",
      ),
      [
        [3, 3, "invalid job name '9lives': use letters, digits, '_' and '-', starting with a letter or '_'"],
        [5, 3, `job name '${long}' is too long: 65 characters, at most 64 allowed`],
        [8, 11, "invalid environment variable name 'my-var': use letters, digits and '_', not starting with a digit"],
      ],
    );
  });

  test("problems of all kinds are reported together, in file order", () => {
    assertProblems(
      yaml(
        "name: x",
        "jobs:",
        "  build:",
        "    needs: [tset]",
        "    steps:",
        "      - run: make",
        "        timeout: soon",
        "  test:",
        "    stesp: []",
        "name: again",
      ),
      [
        [4, 13, "unknown job 'tset' in needs; did you mean 'test'?"],
        [7, 18, 'bad duration "soon": expected a number followed by a unit, e.g. "90s" or "1h30m" (units: ms, s, m, h)'],
        [9, 5, "unknown key 'stesp' in job 'test'; did you mean 'steps'?"],
        [9, 5, "job 'test' is missing required key 'steps'"],
        [10, 1, "duplicate key 'name'; it is already defined at line 1, column 1"],
      ],
    );
  });
});

describe("formatProblems", () => {
  test("one line per problem, sorted by position, without a place when there is none", () => {
    const input: PipelineProblemInfo[] = [
      { line: 3, column: 5, message: "b" },
      { line: 0, column: 0, message: "whole file" },
      { line: 1, column: 9, message: "a" },
      { line: 3, column: 2, message: "c" },
    ];
    assert.equal(
      formatProblems(input, "ci/otto.yaml"),
      ["ci/otto.yaml: whole file", "ci/otto.yaml:1:9: a", "ci/otto.yaml:3:2: c", "ci/otto.yaml:3:5: b"].join("\n"),
    );
    assert.equal(input[0].message, "b", "the input is left as it was");
  });

  test("formats what parsePipeline reports", () => {
    assert.equal(
      formatProblems(problems(yaml("name: x", "jobs:", "  b:", "    steps: [{run: x, timeout: 5}]", "  a: {}")), "otto.yaml"),
      [
        `otto.yaml:4:31: bad duration "5": add a unit, e.g. "5s" (units: ms, s, m, h)`,
        "otto.yaml:5:6: job 'a' is missing required key 'steps'",
      ].join("\n"),
    );
  });
});

describe("parseQuantity", () => {
  const valid: [string, bigint][] = [
    ["1", 1n],
    ["1073741824", 1_073_741_824n],
    ["512Mi", 536_870_912n],
    ["1.5Gi", 1_610_612_736n],
    ["2G", 2_000_000_000n],
    ["1Ki", 1024n],
    ["1K", 1000n],
    ["1k", 1000n],
    ["3M", 3_000_000n],
    ["1Ti", 1_099_511_627_776n],
    ["2T", 2_000_000_000_000n],
    ["0.5Ki", 512n],
    ["1.1Ki", 1127n], // 1126.4 bytes, rounded up to a whole byte
    ["0.001K", 1n],
    ["8388607Ti", 9_223_370_937_343_148_032n],
  ];
  for (const [text, bytes] of valid) {
    test(`"${text}" is ${bytes} bytes`, () => {
      assert.deepEqual(parseQuantity(text), { ok: true, bytes });
    });
  }

  const units = "(units: Ki, Mi, Gi, Ti, K, M, G, T)";
  const invalid: [string, string][] = [
    ["0", `bad memory quantity "0": must be more than 0; leave 'memory' out for no requirement`],
    ["0.0Gi", `bad memory quantity "0.0Gi": must be more than 0; leave 'memory' out for no requirement`],
    ["-5Mi", `bad memory quantity "-5Mi": must be more than 0`],
    ["1.5", `bad memory quantity "1.5": bytes must be a whole number; add a unit, e.g. "1.5Gi" ${units}`],
    ["512MB", `bad memory quantity "512MB": unknown unit "MB" ${units}`],
    ["1m", `bad memory quantity "1m": unknown unit "m" ${units}`],
    ["1g", `bad memory quantity "1g": unknown unit "g" ${units}`],
    ["1 Gi", `bad memory quantity "1 Gi": unknown unit " Gi" ${units}`],
    ["", `bad memory quantity "": expected a number of bytes or a number with a unit, e.g. "512Mi" or "2G" ${units}`],
    ["Gi", `bad memory quantity "Gi": expected a number of bytes or a number with a unit, e.g. "512Mi" or "2G" ${units}`],
    ["8388608Ti", `bad memory quantity "8388608Ti": too large, the limit is 9223372036854775807 bytes (just under 8388608Ti)`],
  ];
  for (const [text, message] of invalid) {
    test(`"${text}" is refused`, () => {
      assert.deepEqual(parseQuantity(text), { ok: false, message });
    });
  }
});

describe("parseDuration", () => {
  const valid: [string, number, number][] = [
    ["90s", 90, 0],
    ["2m", 120, 0],
    ["1h30m", 5400, 0],
    ["500ms", 0, 500_000_000],
    ["1.5h", 5400, 0],
    ["1.25s", 1, 250_000_000],
    ["1.5ms", 0, 1_500_000],
    ["1m30s500ms", 90, 500_000_000],
    ["0s", 0, 0],
    ["87660000h", 315_576_000_000, 0],
  ];
  for (const [text, seconds, nanos] of valid) {
    test(`"${text}" is ${seconds}s ${nanos}ns`, () => {
      assert.deepEqual(parseDuration(text), { ok: true, seconds, nanos });
    });
  }

  const units = "(units: ms, s, m, h)";
  const invalid: [string, string][] = [
    ["10", `bad duration "10": add a unit, e.g. "10s" ${units}`],
    ["1.5", `bad duration "1.5": add a unit, e.g. "1.5s" ${units}`],
    ["1h30", `bad duration "1h30": add a unit after "30" ${units}`],
    ["5d", `bad duration "5d": unknown unit "d" ${units}`],
    ["5 s", `bad duration "5 s": unknown unit " s" ${units}`],
    ["", `bad duration "": expected a number followed by a unit, e.g. "90s" or "1h30m" ${units}`],
    ["-5s", `bad duration "-5s": expected a number followed by a unit, e.g. "90s" or "1h30m" ${units}`],
    ["87660001h", `bad duration "87660001h": too long, the limit is 10000 years`],
  ];
  for (const [text, message] of invalid) {
    test(`"${text}" is refused`, () => {
      assert.deepEqual(parseDuration(text), { ok: false, message });
    });
  }
});

describe("needs as a mapping: {job, artifacts}", () => {
  const jobs = (...needs: string[]) =>
    yaml(
      "name: x",
      "jobs:",
      "  build: {steps: [{run: make}]}",
      "  docs: {steps: [{run: make docs}]}",
      "  lint: {steps: [{run: make lint}]}",
      "  test:",
      ...needs,
      "    steps: [{run: make test}]",
    );
  const testJob = (text: string) => toJson(PipelineJobSchema, parsed(text).jobs[3]) as { needs?: string[]; needsWithoutArtifacts?: string[] };

  test("a need is a job's name or a mapping; artifacts: false leaves its artifacts out", () => {
    const job = testJob(jobs("    needs:", "      - lint", "      - {job: build, artifacts: false}", "      - job: docs", "        artifacts: true"));
    assert.deepEqual([job.needs, job.needsWithoutArtifacts], [["lint", "build", "docs"], ["build"]]);
    const alone = testJob(jobs("    needs: {job: build, artifacts: false}"));
    assert.deepEqual([alone.needs, alone.needsWithoutArtifacts], [["build"], ["build"]]);
    const plain = testJob(jobs("    needs: [build, {job: docs}]"));
    assert.deepEqual([plain.needs, plain.needsWithoutArtifacts], [["build", "docs"], undefined], "every need's artifacts by default");
  });

  test("unknown keys, wrong types and a missing job, each at its line and column", () => {
    assertProblems(
      jobs(
        "    needs:",
        "      - {job: build, artifact: false}",
        "      - {job: docs, artifacts: no}",
        "      - {artifacts: false}",
        "      - {job: [lint]}",
        "      - [lint]",
        "      - 3",
      ),
      [
        [8, 22, "unknown key 'artifact' in a need of job 'test'; did you mean 'artifacts'?"],
        [9, 32, "expected true or false for 'artifacts' in 'needs', got a string (\"no\")"],
        [10, 9, "a need of job 'test' is missing required key 'job'"],
        [11, 15, "expected a string for 'job' in 'needs', got a list"],
        [12, 9, "expected a job's name or a mapping with 'job' and 'artifacts' in 'needs', got a list"],
        [13, 9, "expected a job's name or a mapping with 'job' and 'artifacts' in 'needs', got a number (3)"],
      ],
    );
  });

  test("the needs rules point at the job in the mapping", () => {
    assertProblems(jobs("    needs: [{job: biuld, artifacts: false}, build, {job: build}]"), [
      [7, 19, "unknown job 'biuld' in needs; did you mean 'build'?"],
      [7, 58, "job 'build' is listed twice in the needs of 'test'"],
    ]);
  });
});
