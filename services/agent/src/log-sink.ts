import { pieces } from "./text-pieces.ts";

// Whether a log sink holds as much unsent output as it may: a step's output is
// paused while it does (step-process.ts), so that memory stays bounded however
// fast a step prints.
export interface OutputPressure {
  readonly full: boolean;
  // Called with each change of `full`; returns what stops the calls.
  watch(listener: (full: boolean) => void): () => void;
}

export interface LogSinkOptions {
  // How long a line may wait for others to share its chunk.
  flushMs?: number;
  // The most text per AppendLog (the objects service takes up to 1 MiB).
  chunkBytes?: number;
  // Unsent bytes at which the sink is full; it is no longer full at half that.
  fullBytes?: number;
}

// Collects a job's log lines and ships them to the objects service in
// numbered chunks, one call at a time, each carrying what gathered while the
// last was sent (up to `chunkBytes`), a lone line after `flushMs`; a chunk
// that fails to send is sent again with the same number, which the objects
// service stores once. A chunk that cannot be sent at all ends the shipping:
// later lines are dropped and `takeRest` says why.
export class LogSink implements OutputPressure {
  readonly #send: (seq: number, text: string) => Promise<void>;
  readonly #flushMs: number;
  readonly #chunkBytes: number;
  readonly #fullBytes: number;
  // Unsent lines, as UTF-8 in chunks of up to `chunkBytes`: the last one
  // still filling (a line's own string dies young, which the garbage
  // collector handles cheaply, instead of waiting here among millions).
  #sealed: Buffer[] = [];
  #filling: Buffer | undefined;
  #filled = 0;
  #fillingBytes = firstFillingBytes;
  #pendingBytes = 0;
  // The prefix of lines of this millisecond and step.
  #prefixAt = -1;
  #prefixStep = "";
  #prefix = "";
  #prefixBytes = 0;
  #sendingBytes = 0;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #sending: Promise<void> | undefined;
  #failure: unknown;
  #full = false;
  #listeners = new Set<(full: boolean) => void>();
  // Set by flush(): send everything pending without waiting for the timer.
  #draining = false;

  constructor(send: (seq: number, text: string) => Promise<void>, options: LogSinkOptions | number = {}) {
    const { flushMs = 100, chunkBytes = defaultChunkBytes, fullBytes = 4 * 1024 * 1024 } = typeof options === "number" ? { flushMs: options } : options;
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

  // A line longer than `maxPieceLength` becomes several log lines, so that
  // no chunk outgrows what the objects service takes (1 MiB).
  line(step: string, text: string): void {
    if (this.#failure !== undefined) return;
    const now = Date.now();
    if (now !== this.#prefixAt || step !== this.#prefixStep) {
      this.#prefix = `${new Date(now).toISOString()} ${step} | `;
      this.#prefixBytes = Buffer.byteLength(this.#prefix);
      this.#prefixAt = now;
      this.#prefixStep = step;
    }
    if (text.length <= maxPieceLength) this.#add(text);
    else for (const piece of pieces(text, maxPieceLength)) this.#add(piece);
    this.#update();
    if (this.#sealed.length > 0) this.#pump();
    else if (this.#pendingBytes > 0 && !this.#sending) this.#timer ??= setTimeout(() => this.#onTimer(), this.#flushMs);
  }

  #add(text: string) {
    const size = this.#prefixBytes + Buffer.byteLength(text) + 1;
    if (this.#filling && this.#filled + size > this.#filling.length) {
      if (this.#filled + size > this.#chunkBytes) this.#seal();
      else this.#grow(this.#filled + size);
    }
    this.#filling ??= Buffer.allocUnsafe(Math.max(Math.min(this.#fillingBytes, this.#chunkBytes), size));
    this.#filled += this.#filling.write(this.#prefix, this.#filled);
    this.#filled += this.#filling.write(text, this.#filled);
    this.#filling[this.#filled++] = 10;
    this.#pendingBytes += size;
  }

  // A chunk's buffer starts small and doubles as lines arrive: most jobs
  // print a few lines, and a buffer of a whole chunk for each of them would
  // make the garbage collector run for memory they never use. A log that
  // filled a big buffer starts its next chunk at that size.
  #grow(needed: number) {
    this.#fillingBytes = Math.min(this.#chunkBytes, Math.max(needed, 2 * this.#filling!.length));
    const bigger = Buffer.allocUnsafe(this.#fillingBytes);
    this.#filling!.copy(bigger, 0, 0, this.#filled);
    this.#filling = bigger;
  }

  #seal() {
    if (!this.#filling || this.#filled === 0) return;
    this.#sealed.push(this.#filling.subarray(0, this.#filled));
    this.#filling = undefined;
    this.#filled = 0;
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
  async takeRest(): Promise<FinalChunk | undefined> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (;;) {
      while (this.#sending) await this.#sending;
      if (this.#failure !== undefined) throw this.#failure;
      if (this.#sealed.length === 0) break;
      this.#startSending();
    }
    if (this.#pendingBytes === 0) return undefined;
    const rest = { seq: ++this.#seq, text: this.#filling!.toString("utf8", 0, this.#filled) };
    this.#filling = undefined;
    this.#filled = 0;
    this.#pendingBytes = 0;
    this.#update();
    return rest;
  }

  #onTimer() {
    this.#timer = undefined;
    if (!this.#sending && this.#pendingBytes > 0) this.#startSending();
  }

  #pump() {
    if (this.#sending || this.#pendingBytes === 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#startSending();
  }

  // Sends the next chunk: whole lines, up to `chunkBytes`.
  #startSending() {
    if (this.#sealed.length === 0) this.#seal();
    const chunk = this.#sealed.shift()!;
    const text = chunk.toString("utf8");
    this.#pendingBytes -= chunk.length;
    this.#sendingBytes = chunk.length;
    const seq = ++this.#seq;
    this.#sending = sendWithRetry(() => this.#send(seq, text)).then(
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

export const maxPieceLength = 128 * 1024;
const firstFillingBytes = 16 * 1024;
const defaultChunkBytes = 1024 * 1024 - 4 * 1024;

export interface FinalChunk {
  seq: number;
  text: string;
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
