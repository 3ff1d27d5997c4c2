// The parser's fragment mode (RunService.AddJobs): a document whose only key
// is `jobs`, whose jobs may need the run's jobs, checked like a pipeline
// file's, each problem at its line and column.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { toJson } from "@bufbuild/protobuf";
import { PipelineSchema } from "@otto/gen/v1/pipeline_pb";
import { formatProblems, parsePipeline } from "@otto/parser/parse-pipeline";

const yaml = (...lines: string[]): string => lines.join("\n") + "\n";
const runJobs = ["build", "gen", "test[node=20]", "test[node=22]"];
const fragment = (text: string) => parsePipeline(text, { fragment: { runJobs } });

function problems(text: string): [number, number, string][] {
  const result = fragment(text);
  assert.ok(!result.ok, "expected problems, but the fragment parsed");
  return result.problems.map((p) => [p.line, p.column, p.message]);
}

describe("parsePipeline: jobs fragments", () => {
  test("a fragment's jobs may need the run's jobs, a matrix job by its name as written; the IR has jobs alone", () => {
    const result = fragment(
      yaml(
        "jobs:",
        "  deploy:",
        "    needs: [build, test, check]",
        "    steps: [{ run: ./deploy.sh }]",
        "  check:",
        "    matrix: { os: [linux, mac] }",
        "    needs: gen",
        "    steps: [{ run: ./check.sh }]",
      ),
    );
    assert.ok(result.ok, result.ok ? "" : formatProblems(result.problems, "more.yml"));
    assert.deepEqual(toJson(PipelineSchema, result.pipeline), {
      jobs: [
        { name: "deploy", needs: ["build", "test", "check[os=linux]", "check[os=mac]"], steps: [{ name: "./deploy.sh", run: "./deploy.sh" }] },
        { name: "check[os=linux]", env: { MATRIX_OS: "linux" }, needs: ["gen"], steps: [{ name: "./check.sh", run: "./check.sh" }], matrix: [{ key: "os", value: "linux" }] },
        { name: "check[os=mac]", env: { MATRIX_OS: "mac" }, needs: ["gen"], steps: [{ name: "./check.sh", run: "./check.sh" }], matrix: [{ key: "os", value: "mac" }] },
      ],
    });
  });

  test("only 'jobs' at the top level, and needs of jobs neither the run's nor its own, at their place", () => {
    assert.deepEqual(
      problems(
        yaml(
          "name: more",
          "concurrency: deploy",
          "jobs:",
          "  deploy:",
          "    needs: [biuld, deploy]",
          "    steps: [{ run: ./deploy.sh }]",
        ),
      ),
      [
        [1, 1, "unknown key 'name' at the top level of a jobs fragment; expected one of 'jobs'"],
        [2, 1, "unknown key 'concurrency' at the top level of a jobs fragment; expected one of 'jobs'"],
        [5, 13, "unknown job 'biuld' in needs; did you mean 'build'?"],
        [5, 20, "job 'deploy' needs itself; remove 'deploy' from its needs"],
      ],
    );
    assert.deepEqual(problems(yaml("jobs: {}")), [[1, 7, "'jobs' is empty; define at least one job"]]);
    assert.deepEqual(problems(yaml("steps: []")), [
      [1, 1, "unknown key 'steps' at the top level of a jobs fragment; expected one of 'jobs'"],
      [1, 1, "the jobs fragment is missing required key 'jobs'"],
    ]);
    assert.deepEqual(problems(""), [[0, 0, "the jobs fragment is empty; expected a mapping with 'jobs'"]]);
  });

  test("without fragment mode the run's job names mean nothing: a pipeline file is whole", () => {
    const result = parsePipeline(yaml("name: p", "jobs:", "  deploy:", "    needs: [build]", "    steps: [{ run: x }]"));
    assert.ok(!result.ok);
    assert.deepEqual(result.problems.map((p) => p.message), ["unknown job 'build' in needs"]);
  });
});
