// Reading fields out of a webhook's JSON payload, each either of the shape
// the event needs or a PayloadError that says which field is wrong and how.

export type Payload = Record<string, unknown>;

export class PayloadError extends Error {}

// Own properties only, so a payload cannot reach "constructor" or
// "__proto__" through a path.
export function valueAt(payload: Payload, path: string): unknown {
  let value: unknown = payload;
  for (const key of path.split(".")) {
    if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, key)) return undefined;
    value = (value as Payload)[key];
  }
  return value;
}

export function hasValue(payload: Payload, path: string): boolean {
  const value = valueAt(payload, path);
  return value !== undefined && value !== null;
}

// The items of an array that are objects; none when it is no array.
export function objectsAt(payload: Payload, path: string): Payload[] {
  const value = valueAt(payload, path);
  if (!Array.isArray(value)) return [];
  return value.filter((item): item is Payload => typeof item === "object" && item !== null && !Array.isArray(item));
}

export function textAt(payload: Payload, path: string): string {
  const value = valueAt(payload, path);
  if (typeof value !== "string" || value === "") throw new PayloadError(`${path} must be a non-empty string, got ${shown(value)}`);
  return value;
}

// For what only informs (a commit message): absent or not a string is "".
export function optionalTextAt(payload: Payload, path: string): string {
  const value = valueAt(payload, path);
  return typeof value === "string" ? value : "";
}

const commitShaPattern = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export function isCommitSha(value: unknown): value is string {
  return typeof value === "string" && commitShaPattern.test(value);
}

// Git's way of saying "no object": a deleted ref's new value.
export function isZeroSha(value: unknown): boolean {
  return typeof value === "string" && /^(?:0{40}|0{64})$/.test(value);
}

export function commitShaAt(payload: Payload, path: string): string {
  const value = valueAt(payload, path);
  if (!isCommitSha(value)) throw new PayloadError(`${path} must be a commit SHA (40 or 64 lowercase hex digits), got ${shown(value)}`);
  return value;
}

// "owner/name", or GitLab's "group/subgroup/name".
export function repositoryAt(payload: Payload, path: string): string {
  const value = valueAt(payload, path);
  if (typeof value !== "string" || !/^[^\s/]+(?:\/[^\s/]+)+$/.test(value)) {
    throw new PayloadError(`${path} must be a repository name like "owner/name", got ${shown(value)}`);
  }
  return value;
}

export function positiveIntegerAt(payload: Payload, path: string): number {
  const value = valueAt(payload, path);
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) throw new PayloadError(`${path} must be a positive integer, got ${shown(value)}`);
  return value;
}

// Refs are kept exactly as sent, but a control character (NUL above all)
// is no part of any git ref and could not be passed on as an argument.
export function refAt(payload: Payload, path: string): string {
  const ref = textAt(payload, path);
  if (/[\u0000-\u001f\u007f]/.test(ref)) throw new PayloadError(`${path} contains a control character, which no git ref can`);
  return ref;
}

function shown(value: unknown): string {
  if (value === undefined) return "nothing";
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}
