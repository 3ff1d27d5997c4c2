// Reading a log back (the objects service's ReadLog, in this process against
// a real Postgres): as printed or with each line's time and step, from a
// byte offset, a line or the tail, up to a limit, and searched with context,
// across chunk boundaries; a follower gets every line once. The logs are
// written as an agent writes them: its log sink, in small chunks here.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { LogSegmentSchema } from "@otto/gen/v1/log_store_service_pb";
import { migrate } from "@otto/kit/db";
import { createLogger } from "@otto/kit/log";
import { Notifier } from "@otto/kit/notifier";
import { LogSink, type LogChunk } from "@otto/agent/log-sink";
import { migrations } from "@otto/objects/migrations";
import { LogStore, logChannel, type LogRef } from "@otto/objects/log-store";
import { LogReader, type ReadStart } from "@otto/objects/log-reader";
import { storedChunk } from "@otto/objects/log-chunk";
import { ObjectStore } from "@otto/objects/object-store";
import { logLines, type LogText } from "@otto/objects/log-view";
import { searchLog, searchPattern } from "@otto/objects/log-search";
import { lineMatcher } from "@otto/objects/regex-search";
import { startEngineDb, type EngineDb } from "./helpers/engine-db.ts";

let db: EngineDb;
let notifier: Notifier;
let store: LogStore;
let reader: LogReader;

before(async () => {
  db = await startEngineDb();
  await migrate(db.pool, "objects", migrations);
  notifier = new Notifier(db.url, [logChannel], createLogger("log-read-test"));
  await notifier.start();
  // Every log here stays in Postgres: object storage is never asked.
  const objects = new ObjectStore({ endpoint: "http://127.0.0.1:9", accessKey: "-", secretKey: "-", bucket: "otto", region: "us-east-1", idleTimeoutMs: 100 });
  store = new LogStore(db.pool, 1024 * 1024 * 1024);
  reader = new LogReader(db.pool, objects, notifier);
});
after(async () => {
  await notifier?.close();
  await db?.stop();
});

// A log written through an agent's log sink, `chunkBytes` at most per chunk:
// each entry is printed by its step as it is.
async function writeLog(printed: Array<[step: string, text: string]>, chunkBytes = 300): Promise<LogRef> {
  const log: LogRef = { runId: randomUUID(), job: "build", attempt: 1 };
  const sink = new LogSink((chunk) => append(log, chunk), { chunkBytes, flushMs: 10_000 });
  for (const [step, text] of printed) sink.text(step, text);
  const rest = await sink.takeRest();
  await store.close(log, rest && { seq: rest.seq, chunk: await stored(rest) });
  return log;
}

async function append(log: LogRef, chunk: LogChunk) {
  await store.append(log, chunk.seq, await stored(chunk));
}

function stored(chunk: LogChunk) {
  return storedChunk({ text: "", zstd: chunk.zstd, segments: chunk.segments.map((s) => create(LogSegmentSchema, s)), continuesLine: chunk.continuesLine });
}

interface Options {
  raw?: boolean;
  limit?: number;
  grep?: string;
  regex?: boolean;
  ignoreCase?: boolean;
  context?: number;
  follow?: boolean;
  signal?: AbortSignal;
}

async function read(log: LogRef, start: ReadStart = { offset: 0 }, options: Options = {}): Promise<LogText[]> {
  const events = reader.chunks(log, start, options.follow ?? false, options.signal ?? new AbortController().signal);
  const { raw = false, limit = 0 } = options;
  const texts = options.grep
    ? searchLog(events, { matcher: lineMatcher(searchPattern(options.grep, options.regex ?? false, options.ignoreCase ?? false), !options.regex), context: options.context ?? 0, limit, raw })
    : logLines(events, { limit, raw });
  const out: LogText[] = [];
  for await (const text of texts) out.push(text);
  return out;
}

// The lines of a read, each with its number. A message ends at a line's
// end, unless the line is longer than a chunk: the next message goes on
// with it (and says the same line number).
function numbered(texts: LogText[]): Array<[number, string]> {
  const lines: Array<[number, string]> = [];
  let partial: [number, string] | undefined;
  for (const text of texts) {
    const parts = text.text.split("\n");
    if (partial) {
      assert.equal(text.line, partial[0], "a line's next piece says its number");
      parts[0] = partial[1] + parts[0];
    }
    const rest = parts.pop()!;
    parts.forEach((line, i) => lines.push([text.line + i, line]));
    partial = rest === "" ? undefined : [text.line + parts.length, rest];
  }
  assert.equal(partial, undefined, "the read ends at a line's end");
  return lines;
}

const many = Array.from({ length: 200 }, (_, i) => `line ${i + 1}${i % 37 === 0 ? " ERROR here" : ""}`);
const printed = (): Array<[string, string]> => [
  ["compile", many.slice(0, 120).map((l) => `${l}\n`).join("")],
  ["test", many.slice(120).map((l) => `${l}\n`).join("")],
];

describe("reading a log back", () => {
  let log: LogRef;
  let raw: string;
  before(async () => {
    log = await writeLog(printed());
    raw = (await read(log, { offset: 0 }, { raw: true })).map((t) => t.text).join("");
  });

  it("as printed, and by default each line with its time and step", async () => {
    assert.equal(raw, many.map((l) => `${l}\n`).join(""));
    const { rows } = await db.pool.query("SELECT count(*)::int AS n FROM objects.log_chunks WHERE run_id = $1", [log.runId]);
    assert.ok(rows[0].n > 5, `${rows[0].n} chunks`);
    const rendered = numbered(await read(log));
    assert.equal(rendered.length, 200);
    rendered.forEach(([number, line], i) => {
      assert.equal(number, i + 1);
      const step = i < 120 ? "compile" : "test";
      assert.match(line, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z ${step} \\| ${many[i]}$`));
    });
  });

  it("from a byte offset into the text as printed, each message saying where it starts and ends", async () => {
    for (const offset of [0, 1, 7, 299, 300, 301, 1000, raw.length - 1, raw.length]) {
      const texts = await read(log, { offset }, { raw: true });
      assert.equal(texts.map((t) => t.text).join(""), raw.slice(offset), `from ${offset}`);
      let at = offset;
      for (const text of texts) {
        assert.equal(text.offset, at);
        assert.equal(text.endOffset, at + Buffer.byteLength(text.text));
        at = text.endOffset;
      }
    }
  });

  it("from a line, up to a limit, and the last lines (tail)", async () => {
    for (const [line, limit] of [[1, 1], [2, 10], [57, 100], [121, 3], [199, 5], [200, 0]] as const) {
      const lines = numbered(await read(log, { line: line - 1 }, { raw: true, limit }));
      const want = many.slice(line - 1, limit ? line - 1 + limit : undefined);
      assert.deepEqual(lines, want.map((text, i) => [line + i, text]), `line ${line}, limit ${limit}`);
    }
    assert.deepEqual(await read(log, { line: 200 }, { raw: true }), [], "past the last line");
    for (const tail of [1, 3, 80, 199, 200, 500]) {
      const lines = numbered(await read(log, { tail }, { raw: true }));
      const want = many.slice(-tail);
      assert.deepEqual(lines, want.map((text, i) => [201 - want.length + i, text]), `tail ${tail}`);
    }
  });

  it("searches for a text or an expression on the server, with context, in groups of lines next to each other", async () => {
    // Lines 1, 38, 75, 112, 149 and 186 hold ERROR.
    const errors = numbered(await read(log, { offset: 0 }, { raw: true, grep: "ERROR" }));
    assert.deepEqual(errors.map(([n]) => n), [1, 38, 75, 112, 149, 186]);
    const withContext = await read(log, { offset: 0 }, { raw: true, grep: "error", ignoreCase: true, context: 2 });
    assert.deepEqual(
      withContext.map((t) => [t.line, t.matchLines, numbered([t]).length]),
      [[1, [1], 3], [36, [38], 5], [73, [75], 5], [110, [112], 5], [147, [149], 5], [184, [186], 5]],
    );
    // Groups that touch are one; context crosses chunk boundaries.
    const merged = await read(log, { offset: 0 }, { raw: true, grep: "^line 1[0-9]$", regex: true, context: 1 });
    assert.deepEqual(merged.map((t) => [t.line, t.matchLines, numbered([t]).map(([, l]) => l)]), [
      [9, [10, 11, 12, 13, 14, 15, 16, 17, 18, 19], many.slice(8, 20)],
    ]);
    for (const t of [...withContext, ...merged]) assert.equal(t.text, raw.slice(t.offset, t.endOffset));
    // A limit counts matches; a search starts where the read does.
    assert.deepEqual(numbered(await read(log, { offset: 0 }, { raw: true, grep: "ERROR", limit: 2 })).map(([n]) => n), [1, 38]);
    assert.deepEqual(numbered(await read(log, { tail: 60 }, { raw: true, grep: "ERROR", context: 50 })).map(([n]) => n)[0], 141, "no context before the tail");
    // Rendered, matches carry their time and step.
    const [first] = numbered(await read(log, { offset: 0 }, { grep: "line 186" }));
    assert.match(first![1], / test \| line 186 ERROR here$/);
    assert.throws(() => searchPattern("(", true, false), /grep is not a valid regular expression/);
  });

  it("stops a regular expression that backtracks for ever, refusing the search, and searches again after", async () => {
    const log = await writeLog([["s", `ok\n${"a".repeat(40)}!\nok\n`]]);
    const matcher = lineMatcher(searchPattern("(a+)+$", true, false), false, 300);
    const search = async () => {
      const out: LogText[] = [];
      for await (const text of searchLog(reader.chunks(log, { offset: 0 }, false, new AbortController().signal), { matcher, context: 0, limit: 0, raw: true })) out.push(text);
      return out;
    };
    await assert.rejects(search(), /grep's regular expression took more than 0\.3 s .*; make it simpler/);
    const fine = lineMatcher(searchPattern("^ok$", true, false), false, 300);
    assert.deepEqual(await fine("ok\nno\nok\n"), [0, 6]);
    fine.close();
    matcher.close();
  });
});

describe("reading odd logs", () => {
  it("a line longer than a chunk is one line, shown with one time and step", async () => {
    const long = `${"é".repeat(500)}\n`;
    const log = await writeLog([["a", "before\n"], ["b", long], ["c", "after\n"]], 256);
    const lines = numbered(await read(log));
    assert.deepEqual(lines.map(([n, l]) => [n, l.replace(/^\S+ /, "")]), [
      [1, "a | before"],
      [2, `b | ${long.trimEnd()}`],
      [3, "c | after"],
    ]);
    assert.deepEqual(numbered(await read(log, { tail: 2 }, { raw: true })), [[2, long.trimEnd()], [3, "after"]]);
  });

  it("keeps \\r\\n and colours as printed, and shows \\r\\n lines as lines", async () => {
    const log = await writeLog([["s", "one\r\ntwo \x1b[31mred\x1b[0m\r\nprogress 1\rprogress 2\n"]]);
    assert.equal((await read(log, { offset: 0 }, { raw: true })).map((t) => t.text).join(""), "one\r\ntwo \x1b[31mred\x1b[0m\r\nprogress 1\rprogress 2\n");
    assert.deepEqual(numbered(await read(log)).map(([, l]) => l.replace(/^\S+ s \| /, "")), ["one", "two \x1b[31mred\x1b[0m", "progress 1\rprogress 2"]);
  });

  it("an empty log reads as nothing", async () => {
    const log = await writeLog([]);
    assert.deepEqual(await read(log), []);
    assert.deepEqual(await read(log, { tail: 10 }), []);
  });
});

describe("reading an archived log", () => {
  it("from its end gets nothing, and asks storage for nothing", async () => {
    const log = await writeLog([["s", "one\ntwo\n"]]);
    // As the archiver leaves it: the texts in an object (which this test's
    // storage cannot serve), the rows as the index.
    await db.pool.query("UPDATE objects.logs SET object_key = 'logs/gone.log.zst' WHERE run_id = $1", [log.runId]);
    await db.pool.query("UPDATE objects.log_chunks SET stored_offset = 0, zstd = NULL WHERE run_id = $1", [log.runId]);
    const { rows } = await db.pool.query("SELECT size FROM objects.logs WHERE run_id = $1", [log.runId]);
    assert.deepEqual(await read(log, { offset: Number(rows[0].size) }), []);
    assert.deepEqual(await read(log, { line: 100 }), []);
  });
});

describe("following a log", () => {
  it("gets every line once, in order, as chunks arrive, and ends when the log closes; a tail starts from the end so far", async () => {
    const log: LogRef = { runId: randomUUID(), job: "build", attempt: 1 };
    const sink = new LogSink((chunk) => append(log, chunk), { chunkBytes: 200, flushMs: 10_000 });
    const follower = read(log, { offset: 0 }, { follow: true, raw: true });
    for (let i = 1; i <= 100; i++) {
      sink.line("s", `n ${i}`);
      if (i % 25 === 0) await sink.flush();
    }
    const tailer = read(log, { tail: 5 }, { follow: true, raw: true });
    for (let i = 101; i <= 150; i++) sink.line("s", `n ${i}`);
    const rest = await sink.takeRest();
    await store.close(log, rest && { seq: rest.seq, chunk: await stored(rest) });
    const all = numbered(await follower);
    assert.deepEqual(all, Array.from({ length: 150 }, (_, i) => [i + 1, `n ${i + 1}`]));
    const tail = numbered(await tailer);
    assert.equal(tail[tail.length - 1]![0], 150);
    assert.ok(tail[0]![0] >= 96 && tail[0]![0] <= 146, `the tail started at line ${tail[0]![0]}`);
    assert.deepEqual(tail.map(([n, l]) => l === `n ${n}`), tail.map(() => true));
  });
});
