import { compressLogText, maxLogChunkBytes } from "@otto/kit/log-compression";
import { lineEnds } from "@otto/kit/line-ends";
import { characterStart } from "./output-text.ts";

// Whether a log sink holds as much unsent output as it may: a step's output is
// paused while it does (step-process.ts), so that memory stays bounded however
// fast a step prints.
export interface OutputPressure {
  readonly full: boolean;
  // Called with each change of `full`; returns what stops the calls.
  watch(listener: (full: boolean) => void): () => void;
}

// Who printed a stretch of a chunk's text, and when (by the agent's clock,
// to the millisecond it read it).
export interface ChunkSegment {
  step: string;
  timeMs: bigint;
  bytes: bigint;
  lines: bigint;
}

// A numbered chunk of a job's log: its text as printed, compressed
// (log-compression.ts), and who printed which part of it when.
export interface LogChunk {
  seq: number;
  zstd: Buffer;
  segments: ChunkSegment[];
  // Its text ends inside a line (one longer than a chunk).
  continuesLine: boolean;
}

export interface LogSinkOptions {
  // How long text may wait for more to share its chunk.
  flushMs?: number;
  // The most text per chunk (the objects service takes up to 1 MiB).
  chunkBytes?: number;
  // Unsent bytes at which the sink is full; it is no longer full at half that.
  fullBytes?: number;
}

interface Sealed {
  text: Buffer;
  segments: ChunkSegment[];
}

// Collects a job's log, the text as printed, and ships it to the objects
// service in numbered chunks, one call at a time, each carrying what gathered
// while the last was sent (up to `chunkBytes`, ending at a line end unless a
// line is longer than that), text on its own after `flushMs`. The time and
// step of each line are not written into the text: each chunk says which
// step printed which stretch of it from which millisecond on (a segment).
// A chunk that fails to send is sent again with the same number, which the
// objects service stores once. A chunk that cannot be sent at all ends the
// shipping: later text is dropped and `takeRest` says why.
export class LogSink implements OutputPressure {
  readonly #send: (chunk: LogChunk) => Promise<void>;
  readonly #flushMs: number;
  readonly #chunkBytes: number;
  readonly #fullBytes: number;
  #sealed: Sealed[] = [];
  // The chunk still filling: its buffer starts small and doubles as text
  // arrives (most jobs print little), up to a chunk's size.
  #filling: Buffer | undefined;
  #filled = 0;
  #segments: ChunkSegment[] = [];
  #fillingBytes = firstFillingBytes;
  #pendingBytes = 0;
  #sendingBytes = 0;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> | undefined;
  #failure: unknown;
  #full = false;
  #listeners = new Set<(full: boolean) => void>();
  // Set by flush(): send everything pending without waiting for the timer.
  #draining = false;

  constructor(send: (chunk: LogChunk) => Promise<void>, options: LogSinkOptions | number = {}) {
    const { flushMs = 100, chunkBytes = defaultChunkBytes, fullBytes = 1024 * 1024 } = typeof options === "number" ? { flushMs: options } : options;
    this.#send = send;
    this.#flushMs = flushMs;
    this.#chunkBytes = chunkBytes;
    this.#fullBytes = fullBytes;
  }

  get full(): boolean {
    return this.#full;
  }

  watch(listener: (full: boolean) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  // One line of the agent's own (a step's command, how it ended).
  line(step: string, text: string): void {
    this.text(step, `${text}\n`);
  }

  // Output of `step`, as printed: whole lines, unless a line goes on in the
  // next call.
  text(step: string, text: string | Buffer): void {
    if (this.#failure !== undefined) return;
    let data = typeof text === "string" ? Buffer.from(text) : text;
    while (data.length > 0) {
      const room = this.#chunkBytes - this.#filled;
      if (data.length <= room) {
        this.#put(step, data);
        break;
      }
      let cut = room > 0 ? data.lastIndexOf(10, room - 1) + 1 : 0;
      if (cut === 0) {
        if (this.#filled > 0) {
          this.#seal();
          continue;
        }
        // A line longer than a chunk: cut between two characters.
        cut = characterStart(data, room);
      }
      this.#put(step, data.subarray(0, cut));
      this.#seal();
      data = data.subarray(cut);
    }
    this.#update();
    if (this.#sealed.length > 0) this.#pump();
    else if (this.#pendingBytes > 0 && !this.#sending) this.#timer ??= setTimeout(() => this.#onTimer(), this.#flushMs);
  }

  #put(step: string, data: Buffer) {
    const needed = this.#filled + data.length;
    if (!this.#filling || needed > this.#filling.length) {
      this.#fillingBytes = Math.min(this.#chunkBytes, Math.max(needed, this.#fillingBytes, 2 * (this.#filling?.length ?? 0)));
      const bigger = Buffer.allocUnsafe(this.#fillingBytes);
      this.#filling?.copy(bigger, 0, 0, this.#filled);
      this.#filling = bigger;
    }
    data.copy(this.#filling, this.#filled);
    this.#filled += data.length;
    this.#pendingBytes += data.length;
    const lines = lineEnds(data);
    const now = BigInt(Date.now());
    const last = this.#segments[this.#segments.length - 1];
    if (last && last.step === step && last.timeMs === now) {
      last.bytes += BigInt(data.length);
      last.lines += BigInt(lines);
    } else this.#segments.push({ step, timeMs: now, bytes: BigInt(data.length), lines: BigInt(lines) });
  }

  #seal() {
    if (!this.#filling || this.#filled === 0) return;
    this.#sealed.push({ text: this.#filling.subarray(0, this.#filled), segments: this.#segments });
    this.#filling = undefined;
    this.#filled = 0;
    this.#segments = [];
  }

  // Sends everything pending; resolves once all of it is stored.
  async flush(): Promise<void> {
    this.#draining = true;
    this.#pump();
    while (this.#sending) await this.#sending;
    this.#draining = false;
    if (this.#failure !== undefined) throw this.#failure;
  }

  // Sends all but the last chunk's worth of what is pending and returns that
  // (numbered as the next chunk), for the call that closes the log.
  async takeRest(): Promise<LogChunk | undefined> {
    this.#stopTimer();
    for (;;) {
      while (this.#sending) await this.#sending;
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#sealed.length === 0) break;
      this.#startSending();
    }
    this.#stopTimer();
    if (this.#pendingBytes === 0) return undefined;
    this.#seal();
    const rest = this.#sealed.pop()!;
    this.#pendingBytes = 0;
    this.#update();
    return { seq: ++this.#seq, zstd: await compressLogText(rest.text), segments: rest.segments, continuesLine: continuesLine(rest.text) };
  }

  #stopTimer() {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #onTimer() {
    this.#timer = undefined;
    if (!this.#sending && this.#pendingBytes > 0) this.#startSending();
  }

  #pump() {
    if (this.#sending || this.#pendingBytes === 0) return;
    this.#stopTimer();
    this.#startSending();
  }

  // Sends the next chunk.
  #startSending() {
    if (this.#sealed.length === 0) this.#seal();
    const { text, segments } = this.#sealed.shift()!;
    this.#pendingBytes -= text.length;
    this.#sendingBytes = text.length;
    const seq = ++this.#seq;
    this.#sending = compressLogText(text)
      .then((zstd) => sendWithRetry(() => this.#send({ seq, zstd, segments, continuesLine: continuesLine(text) })))
      .then(
        () => this.#sent(),
        (err) => this.#fail(err),
      );
  }

  #sent() {
    this.#sending = undefined;
    this.#sendingBytes = 0;
    this.#update();
    if (this.#sealed.length > 0 || (this.#draining && this.#pendingBytes > 0)) this.#startSending();
    else if (this.#pendingBytes > 0) this.#timer ??= setTimeout(() => this.#onTimer(), this.#flushMs);
  }

  #fail(err: unknown) {
    this.#failure = err;
    this.#sending = undefined;
    this.#sendingBytes = 0;
    this.#sealed = [];
    this.#filling = undefined;
    this.#filled = 0;
    this.#segments = [];
    this.#pendingBytes = 0;
    this.#update();
  }

  #update() {
    const unsent = this.#pendingBytes + this.#sendingBytes;
    const full = this.#full ? unsent > this.#fullBytes / 2 : unsent >= this.#fullBytes;
    if (full === this.#full) return;
    this.#full = full;
    for (const listener of this.#listeners) listener(full);
  }
}

const firstFillingBytes = 16 * 1024;
// A chunk a quarter of what the objects service takes (maxLogChunkBytes):
// a follower sees output sooner, and every buffer a chunk passes through,
// here and in the objects service, is smaller.
export const defaultChunkBytes = maxLogChunkBytes / 4;

function continuesLine(text: Buffer): boolean {
  return text.length > 0 && text[text.length - 1] !== 10;
}

async function sendWithRetry(send: () => Promise<void>, tries = 10): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      return await send();
    } catch (err) {
      if (i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 200 * i));
    }
  }
}
