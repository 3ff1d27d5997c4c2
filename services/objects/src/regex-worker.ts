// Runs in a worker thread of its own (regex-search.ts), so that an
// expression that takes too long can be stopped by ending the thread.
import { parentPort } from "node:worker_threads";
import { firstOnEachLine } from "./line-matches.ts";

parentPort!.on("message", ({ source, flags, text }: { source: string; flags: string; text: string }) => {
  parentPort!.postMessage(firstOnEachLine(new RegExp(source, flags), text));
});
