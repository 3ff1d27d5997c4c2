// Reading a job's log through the gateway and the CLI while the job runs and
// once its log is archived in S3: the tail, a line, a byte offset, a limit
// and a search give the same answers either way; a follower attached from
// the start, while the log outgrows what stays in Postgres, gets every line
// once and in order.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { followLogs, pipeline, readLogLines, RunState, submit, waitForRun, type LogLine, type ReadLogOptions } from "@otto/sdk";
import { startTestOtto, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { runCli } from "./helpers/cli.ts";

const inlineMaxBytes = 50_000;
const lines = 20_000;

describe("reading a job's log from anywhere, live and archived", () => {
  let otto: TestOtto;
  let db: pg.Client;
  let runId: string;
  let follower: Promise<string[]>;

  before(async () => {
    otto = await startTestOtto({ agents: 1, env: { OTTO_LOG_INLINE_MAX_BYTES: String(inlineMaxBytes) } });
    db = new pg.Client({ connectionString: otto.databaseUrl });
    await db.connect();
    const run = await submit(
      otto.client,
      pipeline("reads")
        .job("print", {
          steps: [
            { name: "print", run: `seq 1 ${lines} | sed 's/^/line /'; e=ERR; echo "\${e}OR: something broke"; seq ${lines + 1} ${lines + 10} | sed 's/^/line /'` },
            { name: "wait", run: "sleep 600" },
          ],
        })
        .build(),
    );
    runId = run.id;
    follower = (async () => {
      const got: string[] = [];
      for await (const line of followLogs(otto.client, runId, "print", { raw: true, signal: AbortSignal.timeout(120_000) })) got.push(line);
      return got;
    })();
    // Running, and printing nothing more: the second step has begun.
    await waitFor("the second step to start", async () => (await lastLines(1))[0]?.text === "$ sleep 600");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await db?.end();
    await otto?.stopAndClean();
  });

  async function collect(options: ReadLogOptions): Promise<LogLine[]> {
    const got: LogLine[] = [];
    for await (const line of readLogLines(otto.client, runId, "print", { attempt: 1, ...options })) got.push(line);
    return got;
  }
  const lastLines = (n: number) => collect({ tail: n, raw: true });
  const strip = (got: LogLine[]) => got.map((l) => [l.number, l.text, l.match] as const);

  // The same questions, asked of the log as it is now; `all` is all of it as printed.
  async function checkReads(all: string[]) {
    const numberOf = (text: string) => all.indexOf(text) + 1;
    assert.ok(numberOf("ERROR: something broke") > lines);
    assert.deepEqual(strip(await lastLines(3)), all.slice(-3).map((text, i) => [all.length - 2 + i, text, false]));
    assert.deepEqual(strip(await collect({ line: 1000, limit: 3, raw: true })), all.slice(999, 1002).map((text, i) => [1000 + i, text, false]));
    // Rendered: each line with its time and step.
    const rendered = await collect({ line: 5, limit: 1 });
    assert.match(rendered[0]!.text, /^\S+Z print \| line 4$/);
    // From a byte offset in the text as printed.
    const offset = all.slice(0, 5000).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0);
    assert.deepEqual(strip(await collect({ raw: true, limit: 2, offset })), [[5001, all[5000], false], [5002, all[5001], false]]);
    const fromOffset: string[] = [];
    for await (const chunk of otto.client.logs.readLog({ runId, job: "print", attempt: 1, offset: BigInt(offset), raw: true, limit: 2n })) fromOffset.push(chunk.text);
    assert.equal(fromOffset.join(""), `${all[5000]}\n${all[5001]}\n`);
    // A search on the server, with context.
    const error = numberOf("ERROR: something broke");
    assert.deepEqual(strip(await collect({ grep: "ERROR", context: 1, raw: true })), [
      [error - 1, all[error - 2], false],
      [error, "ERROR: something broke", true],
      [error + 1, all[error], false],
    ]);
    assert.deepEqual(
      (await collect({ grep: "^line 1999[0-9]$", regex: true, raw: true })).map((l) => l.text),
      Array.from({ length: 10 }, (_, i) => `line ${19990 + i}`),
    );
    // The CLI, as a person would ask.
    const env = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
    const tail = await runCli(["logs", runId, "print", "--tail", "2", "--raw"], env);
    assert.equal(tail.code, 0, tail.stderr);
    assert.equal(tail.stdout, `${all.slice(-2).join("\n")}\n`);
    const resumed = await runCli(["logs", runId, "print", "--offset", String(offset), "--limit", "1", "--raw"], env);
    assert.equal(resumed.stdout, `${all[5000]}\n`, resumed.stderr);
    const grep = await runCli(["logs", runId, "print", "--grep", "line 1234", "--raw"], env);
    assert.equal(grep.code, 0, grep.stderr);
    const numbers = [1234, ...Array.from({ length: 10 }, (_, i) => 12340 + i)];
    const printedAs = (n: number) => `${numberOf(`line ${n}`)}:line ${n}`;
    assert.equal(grep.stdout, [printedAs(1234), "--", ...numbers.slice(1).map(printedAs)].join("\n") + "\n");
    const bad = await runCli(["logs", runId, "print", "--grep", "(", "--regex"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /grep is not a valid regular expression.*\[InvalidArgument\]/);
  }

  it("answers while the job runs, from Postgres", async () => {
    const { rows } = await db.query("SELECT state, object_key FROM objects.logs WHERE run_id = $1", [runId]);
    assert.deepEqual(rows, [{ state: "open", object_key: "" }]);
    await checkReads((await collect({ raw: true })).map((l) => l.text));
  });

  it("answers the same once the job is over and its log is in S3; a follower from the start got every line once, in order", async () => {
    await otto.client.runs.cancelRun({ runId });
    const final = await waitForRun(otto.client, runId);
    assert.equal(final.state, RunState.CANCELED);
    await waitFor("the log archived", async () => (await db.query("SELECT object_key FROM objects.logs WHERE run_id = $1", [runId])).rows[0]?.object_key !== "");
    const all = (await collect({ raw: true })).map((l) => l.text);
    assert.ok(all.length > lines + 11);
    await checkReads(all);
    assert.deepEqual(await follower, all, "the follower's lines");
  });
});
