import { activeTraceIds } from "./telemetry.ts";

// Structured JSON logs, one object per line on stdout.
const levels = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type Level = keyof typeof levels;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(service: string, base: Record<string, unknown> = {}): Logger {
  const configured = (process.env.OTTO_LOG_LEVEL ?? "info") as Level;
  const threshold = levels[configured] ?? levels.info;
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (levels[level] < threshold) return;
    const line = { time: new Date().toISOString(), level, service, msg, ...activeTraceIds(), ...base, ...fields };
    process.stdout.write(JSON.stringify(line, errorReplacer) + "\n");
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (fields) => createLogger(service, { ...base, ...fields }),
  };
}

function errorReplacer(_key: string, value: unknown) {
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (typeof value === "bigint") return value.toString();
  return value;
}
