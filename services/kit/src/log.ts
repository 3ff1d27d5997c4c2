import pino from "pino";
import { activeTraceIds } from "./telemetry.ts";

// Structured JSON logs, one object per line on stdout (pino), each with the
// service, the trace and span ids of the work it belongs to, and the ids a
// caller adds (run, job, ...). The level comes from OTTO_LOG_LEVEL.
export type Level = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

const levels: Level[] = ["debug", "info", "warn", "error"];

export function createLogger(service: string, base: Record<string, unknown> = {}): Logger {
  const configured = process.env.OTTO_LOG_LEVEL as Level | undefined;
  const root = pino({
    level: configured && levels.includes(configured) ? configured : "info",
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: () => activeTraceIds() ?? {},
    serializers: { err: serializeError },
  });
  return wrap(Object.keys(base).length > 0 ? root.child(base) : root);
}

function wrap(logger: pino.Logger): Logger {
  return {
    debug: (msg, fields) => logger.debug(fields ?? {}, msg),
    info: (msg, fields) => logger.info(fields ?? {}, msg),
    warn: (msg, fields) => logger.warn(fields ?? {}, msg),
    error: (msg, fields) => logger.error(fields ?? {}, msg),
    child: (fields) => wrap(logger.child(fields)),
  };
}

// Errors as name and message; stacks only where a caller logs them on purpose.
function serializeError(err: unknown) {
  return err instanceof Error ? { name: err.name, message: err.message } : err;
}
