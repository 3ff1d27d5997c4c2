import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { callerOf } from "@otto/kit/caller";
import { LogService } from "@otto/gen/v1/log_service_pb";
import { LogStoreService } from "@otto/gen/v1/log_store_service_pb";
import type { LogStore } from "./log-store.ts";
import type { LogReader, ReadStart } from "./log-reader.ts";
import { storedChunk } from "./log-chunk.ts";
import { searchLog, searchPattern } from "./log-search.ts";
import { lineMatcher } from "./regex-search.ts";
import { logLines, type LogText } from "./log-view.ts";

// Ids and names are checked by the requests' protovalidate rules.

export function objectsRoutes(logs: LogStore, reader: LogReader) {
  return (router: ConnectRouter) => {
    router.service(LogStoreService, {
      async appendLog(req, ctx) {
        const writer = requireOwnTask(ctx, req.runId, req.job, attemptOf(req.attempt));
        // A chunk sent again is stored once, and a log closed again stays
        // as it was: either may be made again (contracts' repeatable-methods.ts).
        const chunk = await storedChunk(req);
        await logs.append({ runId: req.runId, job: req.job, attempt: attemptOf(req.attempt) }, Number(req.seq), chunk, writer);
        return {};
      },
      async closeLog(req, ctx) {
        const writer = requireOwnTask(ctx, req.runId, req.job, attemptOf(req.attempt));
        const final =
          req.finalSeq > 0n
            ? { seq: Number(req.finalSeq), chunk: await storedChunk({ text: req.finalText, zstd: req.finalZstd, segments: req.finalSegments }) }
            : undefined;
        const { key, size } = await logs.close({ runId: req.runId, job: req.job, attempt: attemptOf(req.attempt) }, final, writer);
        return { objectKey: key, size: BigInt(size) };
      },
    });
    router.service(LogService, {
      async *readLog(req, ctx) {
        const matcher = req.grep !== "" ? lineMatcher(searchPattern(req.grep, req.regex, req.ignoreCase), !req.regex) : undefined;
        const attempt = req.attempt === 0 ? await reader.latestAttempt(req.runId, req.job) : attemptOf(req.attempt);
        const start: ReadStart = req.tail > 0 ? { tail: req.tail } : req.line > 0n ? { line: Number(req.line) - 1 } : { offset: Number(req.offset) };
        const events = reader.chunks({ runId: req.runId, job: req.job, attempt }, start, req.follow, ctx.signal);
        const limit = Number(req.limit);
        const texts = matcher
          ? searchLog(events, { matcher, context: req.context, limit, raw: req.raw })
          : logLines(events, { limit, raw: req.raw });
        try {
          for await (const text of texts) yield answerOf(text, attempt);
        } finally {
          matcher?.close();
        }
      },
    });
  };
}

// A task token opens its own attempt's log and artifacts, and no others.
// Returns the agent the token was given to, whose attempt must still be live
// for the write (undefined without task tokens).
export function requireOwnTask(ctx: HandlerContext, runId: string, job: string, attempt: number): string | undefined {
  const caller = callerOf(ctx);
  if (caller.kind !== "task") return undefined;
  if (caller.runId !== runId || caller.job !== job || caller.attempt !== attempt) {
    throw new ConnectError(
      `this task token is for attempt ${caller.attempt} of job ${caller.job} in run ${caller.runId}, not attempt ${attempt} of ${job} in ${runId}`,
      Code.PermissionDenied,
    );
  }
  return caller.agentId;
}

function answerOf(text: LogText, attempt: number) {
  return {
    text: text.text,
    offset: BigInt(text.offset),
    endOffset: BigInt(text.endOffset),
    line: BigInt(text.line),
    matchLines: text.matchLines.map(BigInt),
    deleted: text.deleted,
    attempt,
  };
}

function attemptOf(attempt: number): number {
  return attempt || 1;
}
