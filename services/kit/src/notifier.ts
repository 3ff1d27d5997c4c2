import { EventEmitter } from "node:events";
import pg from "pg";
import type { Logger } from "./log.ts";

// One LISTEN connection per process, shared by everything that waits for a
// Postgres NOTIFY. Reconnects after a lost connection and then wakes every
// waiter, because notifications sent meanwhile are lost.
export class Notifier {
  readonly #databaseUrl: string;
  readonly #log: Logger;
  readonly #channels: string[];
  readonly #events = new EventEmitter();
  #client: pg.Client | undefined;
  #closed = false;

  constructor(databaseUrl: string, channels: string[], log: Logger) {
    this.#databaseUrl = databaseUrl;
    this.#channels = channels;
    this.#log = log;
    this.#events.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#databaseUrl, application_name: "otto-listener" });
    client.on("notification", (n) => this.#events.emit(n.channel, n.payload ?? ""));
    client.on("error", (err) => {
      this.#log.warn("listener connection lost", { err });
      void this.#reconnect();
    });
    await client.connect();
    for (const channel of this.#channels) await client.query(`LISTEN ${channel}`);
    this.#client = client;
  }

  async #reconnect(): Promise<void> {
    this.#client?.end().catch(() => {});
    this.#client = undefined;
    while (!this.#closed) {
      try {
        await this.start();
        for (const channel of this.#channels) this.#events.emit(channel, "*");
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  // Resolves on the first notification on `channel` whose payload passes
  // `match`, or when `timeoutMs` passes, or when `signal` aborts.
  wait(channel: string, match: (payload: string) => boolean, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#events.off(channel, onNotify);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const onNotify = (payload: string) => {
        if (payload === "*" || match(payload)) done();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#events.on(channel, onNotify);
      signal?.addEventListener("abort", done);
    });
  }

  // Whether notifications can be heard now (not while reconnecting).
  get listening(): boolean {
    return this.#client !== undefined;
  }

  // Wakes this process's waiters on `channel` as if a notification had come.
  poke(channel: string, payload: string): void {
    this.#events.emit(channel, payload);
  }

  on(channel: string, listener: (payload: string) => void): () => void {
    this.#events.on(channel, listener);
    return () => this.#events.off(channel, listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#client?.end().catch(() => {});
  }
}
