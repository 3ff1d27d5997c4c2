import { createHash } from "node:crypto";
import type { Pipeline } from "@otto/gen/v1/pipeline_pb";

// Pipelines repeat (the same file on every push), and parsing depends on the
// text alone: the IR of a text the parser accepted is kept, by the text's
// SHA-256, so that a repeated submit skips the call to the parser. Only
// successes are kept (a refusal names the file, which is not in the key).
// Bounded by entries and by the bytes of the texts kept, least recently used
// first out; an entry lives `ttlMs` at most, so a parser upgraded under a
// running gateway is heard from soon. Concurrent first parses of one text
// each call the parser (each with its caller's file name and deadline).
export class ParseCache {
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #entries = new Map<string, { pipeline: Pipeline; bytes: number; expiresAt: number }>();
  #bytes = 0;

  constructor(options: { maxEntries: number; maxBytes?: number; ttlMs?: number; now?: () => number }) {
    this.#maxEntries = options.maxEntries;
    this.#maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.#ttlMs = options.ttlMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  // The IR of `text`, from the cache or else from `parse` (whose errors
  // pass through, uncached).
  async parse(text: string, parse: (text: string) => Promise<Pipeline>): Promise<Pipeline> {
    if (this.#maxEntries === 0) return parse(text);
    const key = createHash("sha256").update(text).digest("base64");
    const hit = this.#entries.get(key);
    if (hit && hit.expiresAt > this.#now()) {
      // Most recently used last.
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit.pipeline;
    }
    if (hit) this.#remove(key);
    const pipeline = await parse(text);
    this.#add(key, pipeline, Buffer.byteLength(text));
    return pipeline;
  }

  #add(key: string, pipeline: Pipeline, bytes: number): void {
    if (bytes > this.#maxBytes) return;
    this.#remove(key);
    this.#entries.set(key, { pipeline, bytes, expiresAt: this.#now() + this.#ttlMs });
    this.#bytes += bytes;
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#remove(oldest);
    }
  }

  #remove(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}
