import { Code, ConnectError } from "@connectrpc/connect";

// A place in every run's journal, in the order entries become final: by
// the id of the transaction that wrote them, then run and sequence number
// (journal-feed.ts). Clients see it as an opaque string.
export interface JournalCursor {
  xid: bigint;
  runId: string;
  seq: bigint;
}

// Before every entry of transaction `xid` (no run id sorts lower).
const lowestRunId = "00000000-0000-0000-0000-000000000000";

export function cursorBefore(xid: bigint): JournalCursor {
  return { xid, runId: lowestRunId, seq: 0n };
}

export function compareCursors(a: JournalCursor, b: JournalCursor): number {
  if (a.xid !== b.xid) return a.xid < b.xid ? -1 : 1;
  if (a.runId !== b.runId) return a.runId < b.runId ? -1 : 1;
  return a.seq === b.seq ? 0 : a.seq < b.seq ? -1 : 1;
}

export function encodeCursor(cursor: JournalCursor): string {
  return Buffer.from(`1:${cursor.xid}:${cursor.runId}:${cursor.seq}`).toString("base64url");
}

const pattern = /^1:(\d{1,20}):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):(\d{1,19})$/;

export function decodeCursor(text: string): JournalCursor {
  const match = pattern.exec(Buffer.from(text, "base64url").toString());
  if (!match) throw new ConnectError("after_cursor is not a cursor WatchRuns gave: pass a message's `cursor` as it came", Code.InvalidArgument);
  return { xid: BigInt(match[1]), runId: match[2], seq: BigInt(match[3]) };
}
