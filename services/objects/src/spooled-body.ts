import { createReadStream } from "node:fs";
import { mkdtemp, open, rm, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";

// The body of an upload built a piece at a time: in memory up to
// `memoryBytes`, then in a temporary file, so that memory stays bounded
// whatever its size.
export class SpooledBody {
  readonly #memoryBytes: number;
  #parts: Buffer[] = [];
  #size = 0;
  #file: { dir: string; path: string; handle: FileHandle } | undefined;

  constructor(memoryBytes: number) {
    this.#memoryBytes = memoryBytes;
  }

  get size(): number {
    return this.#size;
  }

  async write(bytes: Buffer): Promise<void> {
    this.#size += bytes.length;
    if (!this.#file && this.#size <= this.#memoryBytes) {
      this.#parts.push(bytes);
      return;
    }
    if (!this.#file) {
      const dir = await mkdtemp(join(tmpdir(), "otto-spool-"));
      const path = join(dir, "body");
      this.#file = { dir, path, handle: await open(path, "w", 0o600) };
      for (const part of this.#parts.splice(0)) await this.#file.handle.write(part);
    }
    await this.#file.handle.write(bytes);
  }

  // Hands the whole body to `put`, as a buffer or as a stream of the file.
  async upload(put: (content: Buffer | Readable, size: number) => Promise<void>): Promise<void> {
    if (!this.#file) return put(Buffer.concat(this.#parts), this.#size);
    await this.#file.handle.sync();
    return put(createReadStream(this.#file.path), this.#size);
  }

  async discard(): Promise<void> {
    this.#parts = [];
    if (!this.#file) return;
    const { dir, handle } = this.#file;
    this.#file = undefined;
    await handle.close().catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
}
