import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, toJson } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { PipelineJobSchema, PipelineSchema } from "@otto/gen/v1/pipeline_pb";
import {
  expandedJobCountProblem,
  expandedJobName,
  expandJobs,
  expandMatrix,
  expansionProblems,
  matrixEnvName,
  matrixEnvProblem,
  matrixReferenceProblem,
  substituteMatrix,
  writtenJobName,
  type Matrix,
  type MatrixExpansion,
  type MatrixPair,
} from "@otto/contracts/job-matrix";
import { pipelineProblems } from "@otto/contracts/pipeline-rules";
import { formatProblems, parsePipeline } from "@otto/parser/parse-pipeline";
import { InvalidPipelineError, pipeline, type PipelineBuilder } from "@otto/sdk";

const yaml = (...lines: string[]): string => lines.join("\n") + "\n";
const pairs = (record: Record<string, string>): MatrixPair[] => Object.entries(record).map(([key, value]) => ({ key, value }));
const matrixOf = (axes: Record<string, string[]>, lists: { include?: Record<string, string>[]; exclude?: Record<string, string>[] } = {}): Matrix => ({
  axes: Object.entries(axes).map(([key, values]) => ({ key, values })),
  include: (lists.include ?? []).map(pairs),
  exclude: (lists.exclude ?? []).map(pairs),
});

/** The expansion's names, or the problems' paths and messages. */
function names(matrix: Matrix, job = "test"): string[] {
  const { expansion, problems } = expandMatrix(matrix, job);
  assert.deepEqual(problems, []);
  return expansion!.combinations.map((combination) => expandedJobName(job, combination));
}

function problemsOf(matrix: Matrix, job = "test"): [readonly (string | number)[], string][] {
  const { expansion, problems } = expandMatrix(matrix, job);
  assert.equal(expansion, undefined, "a matrix with problems has no expansion");
  return problems.map((problem) => [problem.path, problem.message]);
}

function expansionOf(matrix: Matrix, job = "test"): MatrixExpansion {
  const { expansion, problems } = expandMatrix(matrix, job);
  assert.deepEqual(problems, []);
  return expansion!;
}

describe("expandMatrix: combinations, include and exclude, names", () => {
  test("every combination of the keys' values, keys in the order written, the first key outermost", () => {
    assert.deepEqual(names(matrixOf({ node: ["20", "22"], os: ["linux", "mac"] })), [
      "test[node=20,os=linux]",
      "test[node=20,os=mac]",
      "test[node=22,os=linux]",
      "test[node=22,os=mac]",
    ]);
    assert.deepEqual(names(matrixOf({ os: ["linux"], node: ["20"] })), ["test[os=linux,node=20]"]);
  });

  test("exclude removes each combination an entry matches, partially written entries too", () => {
    const matrix = matrixOf({ node: ["20", "22", "24"], os: ["linux", "mac"] }, { exclude: [{ node: "20", os: "mac" }, { node: "24" }] });
    assert.deepEqual(names(matrix), ["test[node=20,os=linux]", "test[node=22,os=linux]", "test[node=22,os=mac]"]);
  });

  test("include as on GitHub Actions: extends what it matches (added values replaceable, written ones not), else adds a combination", () => {
    // The example of GitHub's documentation, but that a combination include adds needs every key of the matrix.
    const matrix = matrixOf(
      { fruit: ["apple", "pear"], animal: ["cat", "dog"] },
      {
        include: [
          { color: "green" },
          { color: "pink", animal: "cat" },
          { fruit: "apple", shape: "circle" },
          { fruit: "banana", animal: "cat" },
          { fruit: "banana", animal: "cat" },
        ],
      },
    );
    const { combinations, keys } = expansionOf(matrix);
    assert.deepEqual(keys, ["fruit", "animal", "color", "shape"]);
    assert.deepEqual(
      combinations.map((combination) => Object.fromEntries(combination.map(({ key, value }) => [key, value]))),
      [
        { fruit: "apple", animal: "cat", color: "pink", shape: "circle" },
        { fruit: "apple", animal: "dog", color: "green", shape: "circle" },
        { fruit: "pear", animal: "cat", color: "pink" },
        { fruit: "pear", animal: "dog", color: "green" },
        // Given twice, run once.
        { fruit: "banana", animal: "cat" },
      ],
    );
    assert.deepEqual(
      combinations.map((combination) => expandedJobName("t", combination)),
      ["t[fruit=apple,animal=cat,color=pink,shape=circle]", "t[fruit=apple,animal=dog,color=green,shape=circle]", "t[fruit=pear,animal=cat,color=pink]", "t[fruit=pear,animal=dog,color=green]", "t[fruit=banana,animal=cat]"],
    );
  });

  test("include extends the combinations exclude left, and may bring back one it removed", () => {
    const matrix = matrixOf({ node: ["20", "22"], os: ["linux", "mac"] }, { exclude: [{ os: "mac" }], include: [{ node: "22", os: "mac", experimental: "yes" }, { node: "22", npm: "10" }] });
    assert.deepEqual(names(matrix), ["test[node=20,os=linux]", "test[node=22,os=linux,npm=10]", "test[node=22,os=mac,experimental=yes]"]);
  });

  test("names: written and expanded", () => {
    assert.equal(expandedJobName("build", []), "build");
    assert.equal(expandedJobName("build", pairs({ "node-version": "20.x", os: "ubuntu_24.04" })), "build[node-version=20.x,os=ubuntu_24.04]");
    assert.equal(writtenJobName("build[node=20]"), "build");
    assert.equal(writtenJobName("build"), "build");
    assert.equal(matrixEnvName("node-version"), "MATRIX_NODE_VERSION");
    assert.equal(matrixEnvName("os"), "MATRIX_OS");
  });

  test("256 combinations are allowed", () => {
    const values = (n: number) => Array.from({ length: n }, (_, i) => `v${i}`);
    assert.equal(names(matrixOf({ a: values(16), b: values(16) })).length, 256);
    // Over the limit before exclude, within it after.
    assert.equal(names(matrixOf({ a: values(17), b: values(16) }, { exclude: [{ a: "v16" }] })).length, 256);
  });
});

describe("expandMatrix: every problem, with its path from the matrix", () => {
  const values = (n: number) => Array.from({ length: n }, (_, i) => `v${i}`);

  test("too many combinations, after exclude and include, and far too many before", () => {
    assert.deepEqual(problemsOf(matrixOf({ a: values(17), b: values(16) })), [[[], "the matrix of job 'test' makes 272 combinations, at most 256 allowed"]]);
    assert.deepEqual(problemsOf(matrixOf({ a: values(16), b: values(16) }, { include: [{ a: "x", b: "y" }] })), [
      [[], "the matrix of job 'test' makes 257 combinations, at most 256 allowed"],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ a: values(100), b: values(100), c: values(100) })), [[[], "the matrix of job 'test' makes 1000000 combinations, at most 256 allowed"]]);
  });

  test("no keys, a key without values, a value listed twice", () => {
    assert.deepEqual(problemsOf(matrixOf({})), [[[], `the matrix of job 'test' has no keys; give at least one with a list of values, e.g. node: ["20", "22"]`]]);
    assert.deepEqual(problemsOf(matrixOf({ node: [] })), [[["node"], "matrix key 'node' of job 'test' has no values; list at least one"]]);
    assert.deepEqual(problemsOf(matrixOf({ node: ["20", "22", "20"] })), [[["node", 2], "matrix value '20' is listed twice for 'node' in job 'test'"]]);
  });

  test("bad values: outside [A-Za-z0-9._-], empty, too long; in include and exclude too", () => {
    assert.deepEqual(problemsOf(matrixOf({ os: ["linux", "mac os", "", "x".repeat(65)] })), [
      [["os", 1], "invalid matrix value 'mac os' for 'os': use letters, digits, '.', '_' and '-'"],
      [["os", 2], "invalid matrix value '' for 'os': use letters, digits, '.', '_' and '-'"],
      [["os", 3], `matrix value '${"x".repeat(65)}' for 'os' is too long: 65 characters, at most 64 allowed`],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ os: ["linux"] }, { exclude: [{ os: "a=b" }], include: [{ os: "x,y" }] })), [
      [["exclude", 0, "os", "value"], "invalid matrix value 'a=b' for 'os': use letters, digits, '.', '_' and '-'"],
      [["include", 0, "os", "value"], "invalid matrix value 'x,y' for 'os': use letters, digits, '.', '_' and '-'"],
    ]);
  });

  test("keys: not identifiers, too long, two that make the same variable", () => {
    assert.deepEqual(problemsOf(matrixOf({ "1x": ["a"], "a.b": ["a"], ["k".repeat(33)]: ["a"] })), [
      [["1x"], "invalid matrix key '1x': use letters, digits, '_' and '-', starting with a letter or '_'"],
      [["a.b"], "invalid matrix key 'a.b': use letters, digits, '_' and '-', starting with a letter or '_'"],
      [["k".repeat(33)], `matrix key '${"k".repeat(33)}' is too long: 33 characters, at most 32 allowed`],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ "node-version": ["20"], node_version: ["22"] })), [
      [["node_version"], "matrix keys 'node-version' and 'node_version' of job 'test' both become MATRIX_NODE_VERSION; rename one"],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ os: ["linux"] }, { include: [{ os: "linux", Os: "x" }] })), [
      [["include", 0, "Os"], "matrix keys 'os' and 'Os' of job 'test' both become MATRIX_OS; rename one"],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ os: ["linux"] }, { include: [{ "b c": "x" }] })), [
      [["include", 0, "b c"], "invalid matrix key 'b c': use letters, digits, '_' and '-', starting with a letter or '_'"],
    ]);
  });

  test("exclude and include naming an unknown key (in include: in an entry that adds a combination)", () => {
    assert.deepEqual(problemsOf(matrixOf({ node: ["20", "22"], os: ["linux"] }, { exclude: [{ nod: "20" }] })), [
      [["exclude", 0, "nod"], "unknown matrix key 'nod' in 'exclude' of job 'test'; did you mean 'node'?"],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ node: ["20"], os: ["linux"] }, { exclude: [{ zzz: "20" }] })), [
      [["exclude", 0, "zzz"], "unknown matrix key 'zzz' in 'exclude' of job 'test'; the matrix's keys are 'node', 'os'"],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ node: ["20", "22"], os: ["linux"] }, { include: [{ nod: "24", os: "windows" }] })), [
      [["include", 0, "nod"], "unknown matrix key 'nod' in 'include' of job 'test'; did you mean 'node'?"],
    ]);
  });

  test("an include entry that adds a combination without every key; empty entries; exclude removing everything", () => {
    assert.deepEqual(problemsOf(matrixOf({ node: ["20"], os: ["linux"] }, { include: [{ node: "24" }] })), [
      [["include", 0], "entry 1 of 'include' of job 'test' matches no combination, so it adds one; give it a value for 'os' too"],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ node: ["20"] }, { exclude: [{}], include: [{}] })), [
      [["exclude", 0], "an empty entry in 'exclude' of job 'test'; give it keys and values of the matrix"],
      [["include", 0], "an empty entry in 'include' of job 'test'; give it keys and values of the matrix"],
    ]);
    assert.deepEqual(problemsOf(matrixOf({ node: ["20", "22"] }, { exclude: [{ node: "20" }, { node: "22" }] })), [
      [["exclude"], "'exclude' removes every combination of the matrix of job 'test'"],
    ]);
  });

  test("an expansion's name over the limit", () => {
    const long = "v".repeat(64);
    const problems = problemsOf(matrixOf({ aaaaaaaa: [long], bbbbbbbb: [long] }, {}), "j".repeat(64));
    assert.equal(problems.length, 1);
    assert.deepEqual(problems[0][0], []);
    assert.match(problems[0][1], /^the name of an expansion of job 'j{64}', 'j{64}\[aaaaaaaa=v{64},bbbbbbbb=v{64}\]', is too long: 213 characters, at most 200 allowed$/);
  });
});

describe("${{ matrix.KEY }}: substitution and references", () => {
  const expansion = expansionOf(matrixOf({ node: ["20", "22"], "node-version": ["x"] }, { include: [{ node: "22", npm: "10" }] }));

  test("replaced with or without spaces inside the braces; other expressions and unknown keys stay as written", () => {
    const values = pairs({ node: "20", "node-version": "x" });
    assert.equal(substituteMatrix("node ${{ matrix.node }}/${{matrix.node}}/${{   matrix.node-version\t}}", values), "node 20/20/x");
    assert.equal(substituteMatrix("${{ secrets.X }} ${{ matrix.npm }} $MATRIX_NODE", values), "${{ secrets.X }} ${{ matrix.npm }} $MATRIX_NODE");
  });

  test("a reference must name a key every expansion has, in a job with a matrix", () => {
    assert.equal(matrixReferenceProblem("on ${{ matrix.node }} ${{matrix.node-version}}", "test", expansion), undefined);
    assert.equal(matrixReferenceProblem("${{ matrix.nod }}", "test", expansion), "'${{ matrix.nod }}' names no key of the matrix of job 'test'; did you mean 'node'?");
    assert.equal(matrixReferenceProblem("${{ matrix.zzz }}", "test", expansion), "'${{ matrix.zzz }}' names no key of the matrix of job 'test'; the matrix's keys are 'node', 'node-version', 'npm'");
    assert.equal(matrixReferenceProblem("${{ matrix.npm }}", "test", expansion), "'${{ matrix.npm }}' in job 'test': its expansion 'test[node=20,node-version=x]' has no value for 'npm'");
    assert.equal(matrixReferenceProblem("${{matrix.node}}", "build", undefined), "'${{matrix.node}}' in job 'build', which has no matrix");
    assert.equal(matrixReferenceProblem("no references here", "build", undefined), undefined);
  });

  test("an env variable of the job that its matrix sets too", () => {
    assert.equal(matrixEnvProblem("MATRIX_NODE_VERSION", "test", expansion), "environment variable 'MATRIX_NODE_VERSION' of job 'test' is set by its matrix (key 'node-version'); remove it or use another name");
    assert.equal(matrixEnvProblem("MATRIX_OTHER", "test", expansion), undefined);
    assert.equal(matrixEnvProblem("MATRIX_NODE", "build", undefined), undefined);
  });
});

describe("expandJobs and the IR", () => {
  const test_ = create(PipelineJobSchema, {
    name: "test",
    runsOn: ["${{ matrix.os }}", "fast"],
    env: { WHAT: "node ${{ matrix.node }}" },
    steps: [{ name: "test on ${{ matrix.os }}", run: "echo ${{ matrix.node }} $MATRIX_NODE", env: { N: "${{ matrix.node }}" } }],
  });
  const expansion = expansionOf(matrixOf({ node: ["20", "22"], os: ["linux"] }));
  const jobs = [
    { job: create(PipelineJobSchema, { name: "build", steps: [{ name: "make", run: "make" }] }) },
    { job: test_, expansion },
    { job: create(PipelineJobSchema, { name: "deploy", needs: ["build", "test"], steps: [{ name: "deploy", run: "deploy" }] }) },
  ];

  test("one job per combination, values in env, runs-on, env values and step names; needs of the job become needs of every expansion", () => {
    const expanded = expandJobs(jobs);
    assert.deepEqual(
      expanded.map((job) => toJson(PipelineJobSchema, job)),
      [
        { name: "build", steps: [{ name: "make", run: "make" }] },
        {
          name: "test[node=20,os=linux]",
          runsOn: ["linux", "fast"],
          env: { MATRIX_NODE: "20", MATRIX_OS: "linux", WHAT: "node 20" },
          steps: [{ name: "test on linux", run: "echo ${{ matrix.node }} $MATRIX_NODE", env: { N: "20" } }],
          matrix: [
            { key: "node", value: "20" },
            { key: "os", value: "linux" },
          ],
        },
        {
          name: "test[node=22,os=linux]",
          runsOn: ["linux", "fast"],
          env: { MATRIX_NODE: "22", MATRIX_OS: "linux", WHAT: "node 22" },
          steps: [{ name: "test on linux", run: "echo ${{ matrix.node }} $MATRIX_NODE", env: { N: "22" } }],
          matrix: [
            { key: "node", value: "22" },
            { key: "os", value: "linux" },
          ],
        },
        { name: "deploy", needs: ["build", "test[node=20,os=linux]", "test[node=22,os=linux]"], steps: [{ name: "deploy", run: "deploy" }] },
      ],
    );
    // The jobs as written are left as they were.
    assert.equal(test_.name, "test");
    assert.deepEqual(test_.runsOn, ["${{ matrix.os }}", "fast"]);

    const ir = create(PipelineSchema, { name: "m", jobs: expanded });
    assert.deepEqual(pipelineProblems(ir), []);
    assert.equal(createValidator().validate(PipelineSchema, ir).kind, "valid");
  });

  test("an expansion in the IR: its name is its written name with its values, which keep the rules", () => {
    const job = (name: string, matrix: Record<string, string>) => create(PipelineJobSchema, { name, matrix: pairs(matrix), steps: [{ run: "true" }] });
    assert.deepEqual(expansionProblems(job("test[node=20]", { node: "20" })), []);
    assert.deepEqual(expansionProblems(job("test", {})), []);
    assert.deepEqual(expansionProblems(job("test[node=21]", { node: "20" })), [{ path: ["name"], message: "job 'test[node=21]' has matrix values node=20: its name must be 'test[node=20]'" }]);
    assert.deepEqual(expansionProblems(job("test", { node: "20" })), [{ path: ["name"], message: "job 'test' has matrix values node=20: its name must be 'test[node=20]'" }]);
    const bad = create(PipelineJobSchema, { name: "t[a b=x y,a b=z]", matrix: [{ key: "a b", value: "x y" }, { key: "a b", value: "z" }], steps: [{ run: "true" }] });
    assert.deepEqual(
      expansionProblems(bad).map((p) => [p.path, p.message]),
      [
        [["matrix", 0, "key"], "invalid matrix key 'a b': use letters, digits, '_' and '-', starting with a letter or '_'"],
        [["matrix", 0, "value"], "invalid matrix value 'x y' for 'a b': use letters, digits, '.', '_' and '-'"],
        [["matrix", 1, "key"], "invalid matrix key 'a b': use letters, digits, '_' and '-', starting with a letter or '_'"],
      ],
    );
    // In a whole pipeline, with what protovalidate says.
    const validator = createValidator();
    for (const [name, matrix, message] of [
      ["test[node=20]", {}, /invalid job name 'test\[node=20\]'/],
      ["test[node=21]", { node: "20" }, /its name must be 'test\[node=20\]'/],
      [`${"j".repeat(65)}[node=20]`, { node: "20" }, /is too long: 65 characters, at most 64/],
    ] as const) {
      const ir = create(PipelineSchema, { name: "x", jobs: [job(name, matrix)] });
      assert.ok(pipelineProblems(ir).some((p) => message.test(p.message)), `${name}: ${pipelineProblems(ir).map((p) => p.message).join("; ")}`);
    }
    const tooLong = create(PipelineSchema, { name: "x", jobs: [job(`tttt[${"k".repeat(32)}=${"v".repeat(64)},${"l".repeat(32)}=${"v".repeat(64)}]`, { ["k".repeat(32)]: "v".repeat(64), ["l".repeat(32)]: "v".repeat(64) })] });
    assert.equal(validator.validate(PipelineSchema, tooLong).kind, "invalid");
    assert.deepEqual(pipelineProblems(tooLong).map((p) => p.message), [`job name '${tooLong.jobs[0].name}' is too long: 201 characters, at most 200 allowed`]);
  });

  test("the pipeline's jobs, once expanded, keep the limit on jobs", () => {
    const expansion = (n: number): MatrixExpansion => ({ keys: ["i"], combinations: Array.from({ length: n }, (_, i) => [{ key: "i", value: String(i) }]) });
    assert.equal(expandedJobCountProblem([{ name: "a", expansion: expansion(100) }, { name: "b", expansion: expansion(100) }]), undefined);
    assert.equal(
      expandedJobCountProblem([{ name: "a", expansion: expansion(150) }, { name: "b" }, { name: "c", expansion: expansion(60) }]),
      "the pipeline has 211 jobs once its matrices are expanded ('a' makes 150, 'c' makes 60), at most 200 allowed",
    );
  });
});

describe("a matrix in a pipeline file, and from the SDK's builder", () => {
  function fileProblems(text: string): string {
    const result = parsePipeline(text);
    assert.ok(!result.ok, "the parser accepted the pipeline");
    return formatProblems(result.problems, "ci.yml");
  }

  function builderMessages(builder: PipelineBuilder): string[] {
    try {
      builder.build();
    } catch (err) {
      assert.ok(err instanceof InvalidPipelineError, String(err));
      return err.problems.map((p) => p.message);
    }
    assert.fail("the builder accepted the pipeline");
  }

  test("the parser expands a matrix; the builder makes the same IR", () => {
    const result = parsePipeline(
      yaml(
        "name: m",
        "jobs:",
        "  test:",
        "    runs-on: ${{ matrix.os }}",
        "    matrix:",
        "      node: [20, 22.10]",
        "      os: [linux]",
        "      include:",
        "        - {node: 22.10, os: linux, npm: 10}",
        "    env: {WHAT: 'node ${{ matrix.node }}'}",
        "    steps:",
        "      - name: test ${{matrix.node}}",
        "        run: echo $MATRIX_NODE",
        "  after:",
        "    needs: test",
        "    steps: [{run: echo done}]",
      ),
    );
    assert.ok(result.ok, result.ok ? "" : formatProblems(result.problems, "ci.yml"));
    assert.deepEqual(
      result.pipeline.jobs.map((job) => job.name),
      ["test[node=20,os=linux]", "test[node=22.10,os=linux,npm=10]", "after"],
    );
    assert.deepEqual(result.pipeline.jobs[1].env, { MATRIX_NODE: "22.10", MATRIX_OS: "linux", MATRIX_NPM: "10", WHAT: "node 22.10" });
    assert.deepEqual(result.pipeline.jobs[2].needs, ["test[node=20,os=linux]", "test[node=22.10,os=linux,npm=10]"]);

    const built = pipeline("m")
      .job("test", {
        runsOn: ["${{ matrix.os }}"],
        matrix: { node: ["20", "22.10"], os: ["linux"], include: [{ node: "22.10", os: "linux", npm: "10" }] },
        env: { WHAT: "node ${{ matrix.node }}" },
        steps: [{ name: "test ${{matrix.node}}", run: "echo $MATRIX_NODE" }],
      })
      .job("after", { needs: ["test"], steps: ["echo done"] })
      .build();
    assert.deepEqual(toJson(PipelineSchema, built), toJson(PipelineSchema, result.pipeline));
  });

  test("each mistake at its line and column", () => {
    const text = yaml(
      "name: m",
      "jobs:",
      "  test:",
      "    runs-on: [linux, '${{ matrix.arch }}']",
      "    matrix:",
      "      node: [20, 'a b', 20]",
      "      os: []",
      "      1x: [a]",
      "      exclude:",
      "        - {nod: 20}",
      "    env:",
      "      MATRIX_NODE: x",
      "    steps: [{run: make}]",
    );
    assert.equal(
      fileProblems(text),
      [
        "ci.yml:6:18: invalid matrix value 'a b' for 'node': use letters, digits, '.', '_' and '-'",
        "ci.yml:6:25: matrix value '20' is listed twice for 'node' in job 'test'",
        "ci.yml:7:7: matrix key 'os' of job 'test' has no values; list at least one",
        "ci.yml:8:7: invalid matrix key '1x': use letters, digits, '_' and '-', starting with a letter or '_'",
        "ci.yml:10:12: unknown matrix key 'nod' in 'exclude' of job 'test'; did you mean 'node'?",
      ].join("\n"),
    );
    // Types first: the matrix is checked and expanded (and references checked) only once it is well-formed.
    assert.equal(
      fileProblems(
        yaml(
          "name: m",
          "jobs:",
          "  test:",
          "    runs-on: [linux, '${{ matrix.arch }}']",
          "    matrix:",
          "      node: [20, 22]",
          "      os: linux",
          "      include: {node: 24}",
          "      exclude: [[node, 20]]",
          "    steps: [{run: make}]",
        ),
      ),
      [
        "ci.yml:7:11: expected a list of values for matrix key 'os', got a string (\"linux\")",
        "ci.yml:8:16: expected a list of mappings of matrix keys to values for 'include', got a mapping",
        "ci.yml:9:17: expected a mapping of matrix keys to values in 'exclude', got a list",
      ].join("\n"),
    );
    assert.equal(
      fileProblems(
        yaml(
          "name: m",
          "jobs:",
          "  test:",
          "    runs-on: [linux, '${{ matrix.arch }}']",
          "    matrix:",
          "      node: [20, 22]",
          "      include:",
          "        - {node: 24, os: windows}",
          "        - {color: [red]}",
          "    env:",
          "      MATRIX_NODE: x",
          "      NAME: ${{ matrix.node }}",
          "    steps:",
          "      - name: ${{ matrix.nod }}",
          "        run: make",
          "        env: {A: '${{ matrix.node }}', B: '${{ matrix.zzz }}'}",
          "  build:",
          "    steps:",
          "      - name: build ${{ matrix.node }}",
          "        run: make",
        ),
      ),
      [
        "ci.yml:9:19: expected a value (letters, digits, '.', '_' and '-') for 'color' in 'include', got a list",
        "ci.yml:19:15: '${{ matrix.node }}' in job 'build', which has no matrix",
      ].join("\n"),
    );
    assert.equal(
      fileProblems(
        yaml(
          "name: m",
          "jobs:",
          "  test:",
          "    runs-on: [linux, '${{ matrix.arch }}']",
          "    matrix:",
          "      node: [20, 22]",
          "      include:",
          "        - {node: 22, os: windows}",
          "    env:",
          "      MATRIX_NODE: x",
          "      NAME: ${{ matrix.node }}",
          "    steps:",
          "      - name: ${{ matrix.nod }}",
          "        run: make",
          "        env: {A: '${{ matrix.node }}', B: '${{ matrix.os }}'}",
          "  build:",
          "    steps:",
          "      - name: build ${{ matrix.node }}",
          "        run: make",
        ),
      ),
      [
        "ci.yml:4:22: '${{ matrix.arch }}' names no key of the matrix of job 'test'; the matrix's keys are 'node', 'os'",
        "ci.yml:10:7: environment variable 'MATRIX_NODE' of job 'test' is set by its matrix (key 'node'); remove it or use another name",
        "ci.yml:13:15: '${{ matrix.nod }}' names no key of the matrix of job 'test'; did you mean 'node'?",
        "ci.yml:15:43: '${{ matrix.os }}' in job 'test': its expansion 'test[node=20]' has no value for 'os'",
        "ci.yml:18:15: '${{ matrix.node }}' in job 'build', which has no matrix",
      ].join("\n"),
    );
  });

  test("over the limits: a matrix's combinations, and the pipeline's jobs once expanded", () => {
    const values = (n: number) => `[${Array.from({ length: n }, (_, i) => i).join(", ")}]`;
    assert.equal(
      fileProblems(yaml("name: m", "jobs:", "  test:", "    matrix:", `      a: ${values(20)}`, `      b: ${values(20)}`, "    steps: [{run: make}]")),
      "ci.yml:4:5: the matrix of job 'test' makes 400 combinations, at most 256 allowed",
    );
    const job = (name: string, n: number) => [`  ${name}:`, "    matrix:", `      i: ${values(n)}`, "    steps: [{run: make}]"];
    assert.equal(
      fileProblems(yaml("name: m", "jobs:", ...job("a", 150), ...job("b", 60), "  c:", "    steps: [{run: make}]")),
      "ci.yml:3:3: the pipeline has 211 jobs once its matrices are expanded ('a' makes 150, 'b' makes 60), at most 200 allowed",
    );
  });

  test("the builder refuses what the parser refuses, with the same messages and the paths of its calls", () => {
    const text = yaml(
      "name: m",
      "jobs:",
      "  build:",
      "    steps: [{run: make}]",
      "  test:",
      "    runs-on: '${{ matrix.arch }}'",
      "    matrix:",
      "      node: [20, 'a b']",
      "      exclude: [{nod: 20}]",
      "    steps: [{run: make}]",
      "  lint:",
      "    matrix: {node: [20]}",
      "    env: {X: '${{ matrix.nod }}', MATRIX_NODE: y}",
      "    steps: [{run: make}]",
    );
    const fromParser = parsePipeline(text);
    assert.ok(!fromParser.ok);
    let refused: unknown;
    try {
      pipeline("m")
        .job("build", { steps: ["make"] })
        .job("test", { runsOn: ["${{ matrix.arch }}"], matrix: { node: ["20", "a b"], exclude: [{ nod: "20" }] }, steps: ["make"] })
        .job("lint", { matrix: { node: ["20"] }, env: { X: "${{ matrix.nod }}", MATRIX_NODE: "y" }, steps: ["make"] })
        .build();
    } catch (err) {
      refused = err;
    }
    assert.ok(refused instanceof InvalidPipelineError);
    assert.deepEqual(refused.problems.map((p) => p.message).toSorted(), fromParser.problems.map((p) => p.message).toSorted());
    assert.deepEqual(
      refused.problems.map((p) => [p.path, p.message]),
      [
        [["jobs", 1, "matrix", "node", 1], "invalid matrix value 'a b' for 'node': use letters, digits, '.', '_' and '-'"],
        [["jobs", 1, "matrix", "exclude", 0, "nod"], "unknown matrix key 'nod' in 'exclude' of job 'test'; did you mean 'node'?"],
        [["jobs", 2, "env", "X"], "'${{ matrix.nod }}' names no key of the matrix of job 'lint'; did you mean 'node'?"],
        [["jobs", 2, "env", "MATRIX_NODE"], "environment variable 'MATRIX_NODE' of job 'lint' is set by its matrix (key 'node'); remove it or use another name"],
      ],
    );
    const many = (n: number) => Array.from({ length: n }, (_, i) => String(i));
    assert.deepEqual(builderMessages(pipeline("m").job("a", { matrix: { i: many(150) }, steps: ["make"] }).job("b", { matrix: { i: many(60) }, steps: ["make"] })), [
      "the pipeline has 210 jobs once its matrices are expanded ('a' makes 150, 'b' makes 60), at most 200 allowed",
    ]);
  });
});

describe("a need of a matrix job without its artifacts", () => {
  test("names every expansion, in the parser and the builder alike", () => {
    const result = parsePipeline(
      yaml("name: x", "jobs:", "  test:", "    matrix: {node: ['20', '22']}", "    steps: [{run: make}]", "  report:", "    needs: [{job: test, artifacts: false}]", "    steps: [{run: make}]"),
    );
    assert.ok(result.ok, result.ok ? "" : formatProblems(result.problems, "ci.yml"));
    const report = result.pipeline.jobs.find((job) => job.name === "report")!;
    assert.deepEqual(report.needs, ["test[node=20]", "test[node=22]"]);
    assert.deepEqual(report.needsWithoutArtifacts, ["test[node=20]", "test[node=22]"]);
    const built = pipeline("x")
      .job("test", { matrix: { node: ["20", "22"] }, steps: ["make"] })
      .job("report", { needs: [{ job: "test", artifacts: false }], steps: ["make"] })
      .build();
    assert.deepEqual(built.jobs.find((job) => job.name === "report")!.needsWithoutArtifacts, ["test[node=20]", "test[node=22]"]);
  });
});
