import { createHash } from "node:crypto";

// A job's name as one segment of an object key (or any path). A name of the
// form every job name had before matrices ("build") is its own segment, so
// what is stored under it keeps its key; any other name (a matrix
// expansion's "test[node=20,os=linux]") becomes "job." and the SHA-256 of
// the name in hex: a fixed length, characters any store takes, and never an
// old-form name, which has no '.'. The name itself is kept beside the key.
const oldForm = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function jobKey(name: string): string {
  return oldForm.test(name) ? name : `job.${createHash("sha256").update(name).digest("hex")}`;
}
