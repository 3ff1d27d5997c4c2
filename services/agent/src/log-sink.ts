import { pieces } from "./text-pieces.ts";

// Collects a job's log lines and ships them to the objects service in
// numbered chunks, about every `flushMs`; a chunk that fails to send is sent
// again with the same number, which the objects service stores once.
export class LogSink {
  readonly #send: (seq: number, text: string) => Promise<void>;
  readonly #flushMs: number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(send: (seq: number, text: string) => Promise<void>, flushMs = 100) {
    this.#send = send;
    this.#flushMs = flushMs;
  }

  // A line longer than `maxPieceLength` becomes several log lines, so that
  // no chunk outgrows what the objects service takes (1 MiB).
  line(step: string, text: string): void {
    const prefix = `${new Date().toISOString()} ${step} | `;
    for (const piece of pieces(text, maxPieceLength)) {
      const line = `${prefix}${piece}\n`;
      this.#pending.push(line);
      this.#pendingBytes += Buffer.byteLength(line);
      if (this.#pendingBytes > 64 * 1024) this.flush();
    }
    if (this.#pending.length > 0) this.#timer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  // Waits until every chunk sent so far is stored and returns what is left
  // unsent (numbered as the next chunk), for the call that closes the log.
  async takeRest(): Promise<FinalChunk | undefined> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#chain;
    if (this.#pending.length === 0) return undefined;
    const rest = { seq: ++this.#seq, text: this.#pending.join("") };
    this.#pending = [];
    this.#pendingBytes = 0;
    return rest;
  }

  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length > 0) {
      const text = this.#pending.join("");
      const seq = ++this.#seq;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#chain = this.#chain.then(() => sendWithRetry(() => this.#send(seq, text)));
    }
    return this.#chain;
  }
}

export const maxPieceLength = 128 * 1024;

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
