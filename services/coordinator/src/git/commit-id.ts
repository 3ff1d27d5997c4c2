// A full commit id as git prints it: 40 hex digits (SHA-1 repositories) or
// 64 (SHA-256 repositories), lowercase. Abbreviated ids are not accepted:
// they can be ambiguous, and a forge always sends the full id.
const fullCommitId = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export function isCommitId(s: string): boolean {
  return fullCommitId.test(s);
}
