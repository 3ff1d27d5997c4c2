// The gateway's cache of parsed pipelines: a repeated text skips the parser.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { PipelineSchema, type Pipeline } from "@otto/gen/v1/pipeline_pb";
import { ParseCache } from "@otto/gateway/parse-cache";

// A stand-in parser that counts its calls and names the pipeline after the text.
function countingParser() {
  const texts: string[] = [];
  const parse = async (text: string): Promise<Pipeline> => {
    texts.push(text);
    if (text.startsWith("bad")) throw new Error(`cannot parse ${text}`);
    return create(PipelineSchema, { name: text });
  };
  return { texts, parse };
}

describe("ParseCache", () => {
  it("parses a text once and answers its repeats from the cache", async () => {
    const parser = countingParser();
    const cache = new ParseCache({ maxEntries: 10 });
    const first = await cache.parse("a", parser.parse);
    const again = await cache.parse("a", parser.parse);
    const other = await cache.parse("b", parser.parse);
    assert.equal(first.name, "a");
    assert.equal(again, first);
    assert.equal(other.name, "b");
    assert.deepEqual(parser.texts, ["a", "b"]);
  });

  it("keeps no refusal: a text that failed is parsed again", async () => {
    const parser = countingParser();
    const cache = new ParseCache({ maxEntries: 10 });
    await assert.rejects(cache.parse("bad one", parser.parse), /cannot parse bad one/);
    await assert.rejects(cache.parse("bad one", parser.parse), /cannot parse bad one/);
    assert.deepEqual(parser.texts, ["bad one", "bad one"]);
    assert.equal(cache.size, 0);
  });

  it("drops the least recently used text past its entry limit", async () => {
    const parser = countingParser();
    const cache = new ParseCache({ maxEntries: 2 });
    await cache.parse("a", parser.parse);
    await cache.parse("b", parser.parse);
    await cache.parse("a", parser.parse); // a is now the most recently used
    await cache.parse("c", parser.parse); // b goes
    await cache.parse("a", parser.parse);
    await cache.parse("b", parser.parse);
    assert.deepEqual(parser.texts, ["a", "b", "c", "b"]);
    assert.equal(cache.size, 2);
  });

  it("drops the oldest texts past its byte limit, and keeps no text larger than it", async () => {
    const parser = countingParser();
    const cache = new ParseCache({ maxEntries: 100, maxBytes: 10 });
    await cache.parse("aaaa", parser.parse);
    await cache.parse("bbbb", parser.parse);
    await cache.parse("cccc", parser.parse); // 12 bytes: aaaa goes
    await cache.parse("bbbb", parser.parse);
    await cache.parse("aaaa", parser.parse);
    await cache.parse("x".repeat(11), parser.parse);
    await cache.parse("x".repeat(11), parser.parse);
    assert.deepEqual(parser.texts, ["aaaa", "bbbb", "cccc", "aaaa", "x".repeat(11), "x".repeat(11)]);
  });

  it("parses a text again once its entry has lived its time", async () => {
    const parser = countingParser();
    let now = 1_000;
    const cache = new ParseCache({ maxEntries: 10, ttlMs: 500, now: () => now });
    await cache.parse("a", parser.parse);
    now += 499;
    await cache.parse("a", parser.parse);
    now += 1;
    await cache.parse("a", parser.parse);
    await cache.parse("a", parser.parse);
    assert.deepEqual(parser.texts, ["a", "a"]);
  });

  it("with no entries allowed, parses every time", async () => {
    const parser = countingParser();
    const cache = new ParseCache({ maxEntries: 0 });
    await cache.parse("a", parser.parse);
    await cache.parse("a", parser.parse);
    assert.deepEqual(parser.texts, ["a", "a"]);
  });
});
