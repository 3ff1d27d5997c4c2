import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createSecretMasker } from "../services/agent/src/secret-masker.ts";
import { OutputLines } from "../services/agent/src/output-lines.ts";

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

describe("createSecretMasker", () => {
  test("no secrets (or only empty ones) is the identity", () => {
    for (const mask of [createSecretMasker([]), createSecretMasker(["", ""])]) {
      for (const line of ["", "hello", "***", "a line with $pecial (chars)"]) assert.equal(mask(line), line);
    }
  });

  test("a single secret, every occurrence", () => {
    const mask = createSecretMasker(["hunter2"]);
    assert.equal(mask("password=hunter2"), "password=***");
    assert.equal(mask("hunter2 hunter2,hunter2"), "*** ***,***");
    assert.equal(mask("hunter2hunter2"), "******");
    assert.equal(mask("Hunter2 hunter"), "Hunter2 hunter");
    assert.equal(mask(""), "");
  });

  test("multiple secrets", () => {
    const mask = createSecretMasker(["alpha-token", "bravo-key", ""]);
    assert.equal(mask("a=alpha-token b=bravo-key c=charlie"), "a=*** b=*** c=charlie");
  });

  test("a secret containing another is masked whole, in either order", () => {
    for (const values of [["abc", "xxabcxx"], ["xxabcxx", "abc"]]) {
      const mask = createSecretMasker(values);
      assert.equal(mask("[xxabcxx] [abc]"), "[***] [***]");
    }
    const mask = createSecretMasker(["pass", "password123"]);
    assert.equal(mask("password123 pass password"), "*** *** ***word");
  });

  test("overlapping secrets leave no piece of either", () => {
    const mask = createSecretMasker(["abcd1", "d1efg"]);
    assert.equal(mask("xabcd1efgx"), "x***x");
    assert.equal(mask("abcd1 d1efg"), "*** ***");
    const repeated = createSecretMasker(["aaa"]);
    assert.equal(repeated("baaaab"), "b***b");
  });

  test("a '***' the masker writes is not masked again, even for a secret made of stars", () => {
    const mask = createSecretMasker(["*", "x**y"]);
    assert.equal(mask("a*b"), "a***b");
    assert.equal(mask("x*y"), "x***y");
    assert.equal(mask("x**y"), "***");
  });

  test("special regex characters in the value are literal", () => {
    const values = ["a.b*c", "(x|y)+$", "^[z]{2}\\d?", "$&$1"];
    const mask = createSecretMasker(values);
    assert.equal(mask(`1 ${values.join(" 2 ")} 3`), "1 *** 2 *** 2 *** 2 *** 3");
    assert.equal(mask("aXbbc x y zz"), "aXbbc x y zz");
  });

  test("short secrets are masked too", () => {
    const mask = createSecretMasker(["ab", "7"]);
    assert.equal(mask("abc 17 ab"), "***c 1*** ***");
  });

  test("base64 and URL-encoded forms", () => {
    const value = "p@ss w/rd+?&=";
    const mask = createSecretMasker([value]);
    assert.equal(mask(`plain ${value}`), "plain ***");
    assert.equal(mask(`basic ${b64(value)}`), "basic ***");
    assert.equal(mask(`url ?q=${encodeURIComponent(value)}&x=1`), "url ?q=***&x=1");
    assert.equal(mask(`${encodeURIComponent(value)}${b64(value)}`), "******");
    const unicode = createSecretMasker(["schlüssel"]);
    assert.equal(unicode(`${b64("schlüssel")} ${encodeURIComponent("schlüssel")}`), "*** ***");
  });

  test("a value with a lone surrogate (no URL form) is still masked", () => {
    const value = "ab\uD800cd";
    assert.equal(createSecretMasker([value])(`x${value}x`), "x***x");
  });

  test("a multi-line secret printed whole or line by line", () => {
    const value = "-----BEGIN KEY-----\nMIIEvQIBADANBgkq\r\nhkiG9w0B\n}\n-----END KEY-----";
    const mask = createSecretMasker([value]);
    // printed whole, as the output's lines reach the masker one at a time
    const lines = value.split(/\r?\n/);
    assert.deepEqual(lines.map(mask), ["***", "***", "***", "}", "***"]);
    assert.equal(mask(`key: ${lines[1]}`), "key: ***");
    // a whole multi-line string given to the masker at once
    assert.equal(mask(`before ${value} after`), "before *** after");
    // its base64 fits on one line
    assert.equal(mask(b64(value)), "***");
    // lines shorter than 4 characters are not needles of their own
    assert.equal(mask("} {"), "} {");
    // a lone \r separates lines too, as readline splits there
    assert.equal(createSecretMasker(["first-line\rsecond-line"])("second-line"), "***");
  });

  test("a secret split across raw output chunks is masked once assembled into lines", () => {
    const secret = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    const mask = createSecretMasker([secret, "a second\nmulti-line value"]);
    const output = `start\ntoken=${secret} ok\r\n${secret}\nprinting: a second\nmulti-line value\nend`;
    // Cut the raw bytes at every position inside the secret, and also into
    // one-byte chunks, as pipe reads may deliver them.
    const at = output.indexOf(secret); // output is ASCII: string index = byte offset
    const cuts: number[][] = [];
    for (let i = at + 1; i < at + secret.length; i++) cuts.push([i]);
    cuts.push([...Buffer.from(output).keys()].slice(1));
    for (const cut of cuts) {
      const bytes = Buffer.from(output);
      const chunks = [0, ...cut].map((from, i, all) => bytes.subarray(from, all[i + 1]));
      assert.ok(cut.some((c) => c > at && c < at + secret.length), "a chunk boundary falls inside the secret");
      assert.ok(!chunks[0].includes(secret));
      const masked: string[] = [];
      const lines = new OutputLines();
      for (const chunk of chunks) lines.push(chunk, (line) => masked.push(mask(line)));
      lines.end((line) => masked.push(mask(line)));
      assert.deepEqual(masked, ["start", "token=*** ok", "***", "printing: ***", "***", "end"]);
    }
  });
});
