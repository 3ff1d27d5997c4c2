import { Worker } from "node:worker_threads";
import { Code, ConnectError } from "@connectrpc/connect";
import { firstOnEachLine } from "./line-matches.ts";

// Where a pattern first matches on each line of a text (indices into it).
export interface LineMatcher {
  (text: string): Promise<number[]>;
  close(): void;
}

// A text (escaped, with or without case) cannot take long to find: it is
// looked for here. A regular expression from a caller may backtrack for
// ever on some lines: it runs in a worker thread, which is ended, and the
// search refused, when one chunk takes longer than `limitMs`.
export function lineMatcher(pattern: RegExp, literal: boolean, limitMs = 5_000): LineMatcher {
  if (literal) return Object.assign(async (text: string) => firstOnEachLine(pattern, text), { close() {} });
  let worker: Worker | undefined;
  const match = (text: string) =>
    new Promise<number[]>((resolve, reject) => {
      if (!worker) {
        worker = new Worker(new URL("./regex-worker.ts", import.meta.url));
        // An idle search holds nothing up; a running one has its timer.
        worker.unref();
      }
      const running = worker;
      const timer = setTimeout(() => {
        running.off("message", onMessage).off("error", onError);
        void running.terminate();
        worker = undefined;
        reject(new ConnectError(`grep's regular expression took more than ${limitMs / 1000} s on ${Math.round(text.length / 1024)} KiB of the log; make it simpler`, Code.InvalidArgument));
      }, limitMs);
      const settle = () => {
        clearTimeout(timer);
        running.off("message", onMessage).off("error", onError);
      };
      const onMessage = (found: number[]) => {
        settle();
        resolve(found);
      };
      const onError = (err: Error) => {
        settle();
        worker = undefined;
        reject(err);
      };
      running.on("message", onMessage).on("error", onError);
      running.postMessage({ source: pattern.source, flags: pattern.flags, text });
    });
  return Object.assign(match, {
    close() {
      void worker?.terminate();
      worker = undefined;
    },
  });
}
