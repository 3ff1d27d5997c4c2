import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createSecretMasker } from "@otto/agent/secret-masker";
import { OutputText, maxLineLength } from "@otto/agent/output-text";

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
    // several lines given to the masker at once: each line masked, the line ends kept
    assert.equal(mask(`before ${value} after`), "before ***\n***\r\n***\n}\n*** after");
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
      const lines = new OutputText();
      const onText = (text: Buffer) => masked.push(...mask(text.toString("utf8")).split("\n").slice(0, -1));
      for (const chunk of chunks) lines.push(chunk, onText);
      lines.end(onText);
      assert.deepEqual(masked, ["start", "token=*** ok\r", "***", "printing: ***", "***", "end"]);
    }
  });

  test("a secret split by an escape sequence, which a terminal shows whole, is masked and the colours stay", () => {
    const mask = createSecretMasker(["S3cr3t-V@lue"]);
    assert.equal(mask("S3cr3t\x1b[0m-V@lue"), "***\x1b[0m");
    assert.equal(mask("\x1b[31mS3cr3t\x1b[0m-V@lue\x1b[32m ok\x1b[0m"), "\x1b[31m***\x1b[0m\x1b[32m ok\x1b[0m");
    assert.equal(mask("a S3\x1b[1;38;5;196mcr\x1b[0m3t-\x1b(BV@lue b"), "a ***\x1b[1;38;5;196m\x1b[0m\x1b(B b");
    assert.equal(mask("S3cr3t\x1b]8;;https://example.com\x1b\\-V@lue"), "***\x1b]8;;https://example.com\x1b\\", "an OSC hyperlink");
    // as printed, inside a sequence (a window title): the sequence is masked where it holds it
    assert.equal(mask("\x1b]0;S3cr3t-V@lue\x07 x"), "\x1b]0;***\x07 x");
    // not the secret once shown: nothing masked
    assert.equal(mask("S3cr3t\x1b[0m V@lue"), "S3cr3t\x1b[0m V@lue");
    // its base64 split the same way
    assert.equal(mask(`${b64("S3cr3t-V@lue").slice(0, 5)}\x1b[0m${b64("S3cr3t-V@lue").slice(5)}`), "***\x1b[0m");
  });

  test("a secret made of escape sequences is masked, sequences and all", () => {
    const mask = createSecretMasker(["\x1b[0mkey\x1b[0m"]);
    assert.equal(mask("x\x1b[0mkey\x1b[0my"), "x***y");
  });

  // The pieces of a line through mask.lines, joined: what the log gets of it.
  const inPieces = (mask: ReturnType<typeof createSecretMasker>, pieces: string[]) => {
    const out: string[] = [];
    const line = mask.lines((text) => out.push(text));
    pieces.forEach((piece, i) => line(piece, i < pieces.length - 1));
    return out.join("");
  };

  test("a line in pieces is masked as the whole line is, wherever it is cut", () => {
    const secret = "S3cr3t-V@lue";
    const mask = createSecretMasker([secret, "ab"]);
    const lines = [
      `before ${secret} middle ${b64(secret)} after ${encodeURIComponent(secret)}.`,
      `x ababab ${secret}${secret} y`,
      `\x1b[31mS3cr3t\x1b[0m-V@lue\x1b[32m ok\x1b[0m and then S3cr3t\x1b]8;;https://example.com\x1b\\-V@lue`,
      "nothing secret here at all, \x1b[1mbold\x1b[0m",
    ];
    for (const line of lines) {
      for (let size = 1; size <= line.length; size++) {
        const pieces = Array.from({ length: Math.ceil(line.length / size) }, (_, i) => line.slice(i * size, (i + 1) * size));
        assert.equal(inPieces(mask, pieces), mask(line), `in pieces of ${size}`);
      }
    }
  });

  test("a stretch masked across a cut leaves nothing of the secret behind", () => {
    const mask = createSecretMasker(["abab"]);
    const line = "x" + "ab".repeat(8) + "y"; // overlapping matches: one stretch
    for (let cut = 1; cut < line.length; cut++) assert.equal(inPieces(mask, [line.slice(0, cut), line.slice(cut)]), "x***y", `cut at ${cut}`);
  });

  test("a line longer than 4 MiB: a secret across the split is masked, and a colour cut by it stays", () => {
    const secret = "S3cr3t-V@lue";
    const mask = createSecretMasker([secret]);
    for (const [before, printed, after] of [
      ["x", secret, "y"],
      ["x", "S3cr3t\x1b[0m-V@lue", "\x1b[0my"],
      ["\x1b[31m", "S3cr3t\x1b[38;5;196m-V@lue", "y"],
    ]) {
      for (let offset = 1; offset < printed.length; offset++) {
        // the split falls `offset` characters into what is printed
        const line = before.repeat(Math.floor((maxLineLength - offset) / before.length)).padEnd(maxLineLength - offset, "x") + printed + after.repeat(1000);
        const got: string[] = [];
        const lines = new OutputText();
        const onText = mask.lines((text) => got.push(text));
        lines.push(Buffer.from(line + "\n"), (text, continues) => onText(text.toString("utf8"), continues));
        const joined = got.join("");
        assert.ok(got.length >= 2, "the line came in pieces");
        assert.ok(!joined.includes("S3cr3t") && !joined.includes("V@lue"), `no half of the secret left, split at ${offset}`);
        assert.equal(joined, mask(line) + "\n", `split at ${offset}`);
        assert.match(joined, /\*\*\*/);
      }
    }
  });
});
