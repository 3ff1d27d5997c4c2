// The agent's log sink: lines into numbered chunks the objects service takes.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LogSink, maxPieceLength, type FinalChunk } from "../services/agent/src/log-sink.ts";
import { maxChunkBytes } from "../services/objects/src/log-store.ts";

describe("LogSink", () => {
  it("sends lines in numbered chunks, in order, the rest with the close", async () => {
    const sent: Array<{ seq: number; text: string }> = [];
    const sink = new LogSink(async (seq, text) => void sent.push({ seq, text }), 10_000);
    sink.line("build", "one");
    await sink.flush();
    sink.line("build", "two");
    const rest = await sink.takeRest();
    assert.deepEqual(sent.map((c) => c.seq), [1]);
    assert.match(sent[0].text, /^\S+ build \| one\n$/);
    assert.equal(rest?.seq, 2);
    assert.match(rest!.text, /^\S+ build \| two\n$/);
  });

  it("cuts a line too long for one chunk into several, none over the objects service's limit", async () => {
    const sent: string[] = [];
    const sink = new LogSink(async (_seq, text) => void sent.push(text), 10_000);
    // Three-byte characters, and a surrogate pair right at a cut.
    const long = "€".repeat(maxPieceLength - 1) + "😀" + "€".repeat(3 * maxPieceLength);
    sink.line("build", long);
    const rest = await sink.takeRest();
    if (rest) sent.push(rest.text);
    for (const chunk of sent) assert.ok(Buffer.byteLength(chunk) <= maxChunkBytes, `a chunk of ${Buffer.byteLength(chunk)} bytes`);
    const lines = sent.join("").split("\n").filter(Boolean);
    assert.ok(lines.length >= 4, `${lines.length} lines`);
    assert.equal(lines.map((line) => line.slice(line.indexOf(" | ") + 3)).join(""), long, "nothing lost, no character cut in two");
  });

  it("is full while more than its bound waits unsent, until half of that is left, and sends what gathered meanwhile as one chunk", async () => {
    const sent: string[] = [];
    const releases: Array<() => void> = [];
    const sink = new LogSink((_seq, text) => new Promise((resolve) => releases.push(() => resolve(void sent.push(text)))), {
      flushMs: 10_000,
      chunkBytes: 1000,
      fullBytes: 4000,
    });
    const changes: boolean[] = [];
    sink.watch((full) => changes.push(full));
    const line = "x".repeat(60); // about 100 bytes with its time and step
    for (let i = 0; i < 50; i++) sink.line("build", `${i} ${line}`);
    assert.equal(sink.full, true);
    assert.deepEqual(changes, [true]);
    assert.equal(releases.length, 1, "one call at a time");
    while (sink.full) releases.shift()!(), await new Promise((r) => setImmediate(r));
    assert.deepEqual(changes, [true, false]);
    let rest: FinalChunk | undefined | null = null;
    const taking = sink.takeRest().then((r) => void (rest = r));
    while (rest === null) releases.shift()?.(), await new Promise((r) => setImmediate(r));
    await taking;
    const text = sent.join("") + ((rest as FinalChunk | undefined)?.text ?? "");
    assert.ok(sent.every((chunk) => Buffer.byteLength(chunk) <= 1000 && Buffer.byteLength(chunk) > 800), "chunks filled up to their bound");
    assert.deepEqual(text.split("\n").filter(Boolean).map((l) => Number(l.split(" | ")[1].split(" ")[0])), Array.from({ length: 50 }, (_, i) => i));
  });

  it("fills a chunk of the default size whole, lines of many sizes in order, the buffer growing under them", async () => {
    const sent: string[] = [];
    const sink = new LogSink(async (_seq, text) => void sent.push(text), 10_000);
    // About 3 MB: each chunk starts small and grows (16 KiB, then doubling).
    const lines = Array.from({ length: 3000 }, (_, i) => `${i} ${"é".repeat(i % 997)}`);
    for (const line of lines) sink.line("build", line);
    const rest = await sink.takeRest();
    if (rest) sent.push(rest.text);
    assert.ok(sent.length >= 3, `${sent.length} chunks`);
    for (const chunk of sent.slice(0, -1)) assert.ok(Buffer.byteLength(chunk) > maxChunkBytes - 4 * 1024 - 2100, `a chunk of ${Buffer.byteLength(chunk)} bytes`);
    for (const chunk of sent) assert.ok(Buffer.byteLength(chunk) <= maxChunkBytes, `a chunk of ${Buffer.byteLength(chunk)} bytes`);
    assert.deepEqual(sent.join("").split("\n").filter(Boolean).map((l) => l.slice(l.indexOf(" | ") + 3)), lines);
  });
});
