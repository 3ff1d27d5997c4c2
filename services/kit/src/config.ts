// Reads a process's configuration from environment variables once, at start,
// and fails with a message naming the variable when one is wrong.
import { parseDuration } from "@otto/contracts/duration";

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

export function readString(env: Env, name: string, fallback?: string): string {
  const value = env[name];
  if (value !== undefined && value !== "") return value;
  if (fallback !== undefined) return fallback;
  throw new ConfigError(`${name} is required but not set`);
}

export function readInt(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new ConfigError(`${name} must be an integer >= ${min}, got "${raw}"`);
  }
  return value;
}

// A number with decimals allowed, from `min` to `max`.
export function readNumber(env: Env, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!/^\s*[0-9.eE+-]+\s*$/.test(raw) || !Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

// A duration as pipelines write them ("6h", "90m", "45s"), in seconds.
export function readDurationSeconds(env: Env, name: string, fallbackSeconds: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallbackSeconds;
  const parsed = parseDuration(raw.trim());
  if (!parsed.ok) throw new ConfigError(`${name}: ${parsed.message}`);
  const seconds = parsed.seconds + parsed.nanos / 1e9;
  if (seconds <= 0) throw new ConfigError(`${name} must be longer than nothing, got "${raw}"`);
  return seconds;
}

export function readChoice<T extends string>(env: Env, name: string, choices: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new ConfigError(`${name} must be one of ${choices.join(", ")}, got "${raw}"`);
  }
  return raw as T;
}

export function readList(env: Env, name: string, fallback: string[]): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  return raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

export function loadConfig<T>(service: string, read: (env: Env) => T): T {
  try {
    return read(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: configuration error: ${err.message}\n`);
      process.exit(78);
    }
    throw err;
  }
}
