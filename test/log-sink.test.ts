// The agent's log sink: lines into numbered chunks the objects service takes.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { LogSink, maxPieceLength } from "../services/agent/src/log-sink.ts";
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
});
