// The agent's log sink: output into numbered, compressed chunks the objects
// service takes, with who printed what when beside the text.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { defaultChunkBytes, LogSink, type LogChunk } from "@otto/agent/log-sink";
import { decompressLogText, maxLogChunkBytes } from "@otto/kit/log-compression";

async function textOf(chunk: LogChunk): Promise<string> {
  return (await decompressLogText(chunk.zstd)).toString("utf8");
}

async function texts(chunks: LogChunk[]): Promise<string[]> {
  return Promise.all(chunks.map(textOf));
}

function collecting() {
  const sent: LogChunk[] = [];
  return { sent, send: async (chunk: LogChunk) => void sent.push(chunk) };
}

describe("LogSink", () => {
  it("sends the text as printed in numbered chunks, in order, the rest with the close, each stretch's step and time beside it", async () => {
    const { sent, send } = collecting();
    const sink = new LogSink(send, 10_000);
    const before = Date.now();
    sink.line("build", "one");
    sink.text("build", Buffer.from("two\nthree\n"));
    await sink.flush();
    sink.text("test", "four\n");
    const rest = await sink.takeRest();
    assert.deepEqual(sent.map((c) => c.seq), [1]);
    assert.equal(await textOf(sent[0]!), "one\ntwo\nthree\n");
    // One segment per millisecond in which the step printed.
    const segments = sent[0]!.segments;
    assert.deepEqual(new Set(segments.map((s) => s.step)), new Set(["build"]));
    assert.deepEqual([segments.reduce((n, s) => n + s.bytes, 0n), segments.reduce((n, s) => n + s.lines, 0n)], [14n, 3n]);
    for (const { timeMs } of segments) assert.ok(Number(timeMs) >= before && Number(timeMs) <= Date.now());
    assert.equal(rest?.seq, 2);
    assert.equal(await textOf(rest!), "four\n");
    assert.deepEqual(rest!.segments.map((s) => [s.step, s.bytes, s.lines]), [["test", 5n, 1n]]);
  });

  it("a new segment starts where the step changes, whatever the time", async () => {
    const { sent, send } = collecting();
    const sink = new LogSink(send, 10_000);
    sink.text("a", "1\n");
    sink.text("b", "22\n");
    sink.text("a", "333\n");
    const rest = (await sink.takeRest())!;
    assert.deepEqual(rest.segments.map((s) => [s.step, s.bytes, s.lines]).filter(([step], i, all) => i === 0 || all[i - 1]![0] !== step), [
      ["a", 2n, 1n],
      ["b", 3n, 1n],
      ["a", 4n, 1n],
    ]);
    assert.equal(sent.length, 0);
  });

  it("cuts a line too long for one chunk between characters, none over the objects service's limit", async () => {
    const { sent, send } = collecting();
    const sink = new LogSink(send, 10_000);
    // Three-byte characters and four-byte ones, so that a cut may fall inside either.
    const long = "€".repeat(maxLogChunkBytes / 3 - 1) + "😀" + "€".repeat(maxLogChunkBytes);
    sink.text("build", `${long}\n`);
    const rest = await sink.takeRest();
    const chunks = [...sent, ...(rest ? [rest] : [])];
    for (const chunk of chunks) {
      const bytes = chunk.segments.reduce((n, s) => n + Number(s.bytes), 0);
      assert.ok(bytes <= maxLogChunkBytes, `a chunk of ${bytes} bytes`);
      assert.equal((await decompressLogText(chunk.zstd)).length, bytes, "its segments add up to its text");
    }
    assert.ok(chunks.length >= 5, `${chunks.length} chunks`);
    assert.equal((await texts(chunks)).join(""), `${long}\n`, "nothing lost, no character cut in two");
  });

  it("is full while more than its bound waits unsent, until half of that is left, and sends what gathered meanwhile as one chunk", async () => {
    const sent: LogChunk[] = [];
    const releases: Array<() => void> = [];
    const sink = new LogSink((chunk) => new Promise<void>((resolve) => releases.push(() => resolve(void sent.push(chunk)))), {
      flushMs: 10_000,
      chunkBytes: 1000,
      fullBytes: 4000,
    });
    const changes: boolean[] = [];
    sink.watch((full) => changes.push(full));
    const line = "x".repeat(95); // 100 bytes with its number
    for (let i = 0; i < 50; i++) sink.line("build", `${String(i).padStart(4)}${line}`);
    assert.equal(sink.full, true);
    assert.deepEqual(changes, [true]);
    const calls = async () => {
      while (releases.length === 0) await new Promise((r) => setImmediate(r));
    };
    await calls();
    assert.equal(releases.length, 1, "one call at a time");
    while (sink.full) {
      await calls();
      releases.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(changes, [true, false]);
    let rest: LogChunk | undefined | null = null;
    const taking = sink.takeRest().then((r) => void (rest = r));
    while (rest === null) releases.shift()?.(), await new Promise((r) => setImmediate(r));
    await taking;
    const all = await texts([...sent, ...(rest ? [rest as LogChunk] : [])]);
    assert.ok(all.slice(0, -1).every((chunk) => Buffer.byteLength(chunk) === 1000), "chunks filled up to their bound, whole lines");
    assert.deepEqual(all.join("").split("\n").filter(Boolean).map((l) => Number(l.slice(0, 4))), Array.from({ length: 50 }, (_, i) => i));
  });

  it("fills a chunk of the default size with whole lines of many sizes, in order, the buffer growing under them", async () => {
    const { sent, send } = collecting();
    const sink = new LogSink(send, 10_000);
    // About 3 MB: each chunk's buffer starts small and grows (16 KiB, then doubling).
    const lines = Array.from({ length: 3000 }, (_, i) => `${i} ${"é".repeat(i % 997)}`);
    for (const line of lines) sink.line("build", line);
    const rest = await sink.takeRest();
    const all = await texts([...sent, ...(rest ? [rest] : [])]);
    assert.ok(all.length >= 3 * (maxLogChunkBytes / defaultChunkBytes), `${all.length} chunks`);
    for (const chunk of all.slice(0, -1)) {
      assert.ok(Buffer.byteLength(chunk) > defaultChunkBytes - 2100 && Buffer.byteLength(chunk) <= defaultChunkBytes, `a chunk of ${Buffer.byteLength(chunk)} bytes`);
      assert.ok(chunk.endsWith("\n"), "ends at a line's end");
    }
    assert.deepEqual(all.join("").split("\n").filter(Boolean), lines);
  });
});
