import type http from "node:http";
import { createContextKey } from "@connectrpc/connect";

// A request answered before its body was read (refused at the gate, or too
// large) closes its connection without reading the rest: Node would
// otherwise read and drop the whole body to keep the connection. The socket
// stops reading once a little is buffered, sends the answer, and lingers
// before it is destroyed, so that a client still writing its body reads the
// answer before a reset can discard it. Over HTTP/2 the connection is a
// session shared by other streams and is left alone: Node itself closes a
// stream answered with its body unread (RST_STREAM NO_ERROR, RFC 9113 8.1),
// and a body read in part is destroyed by its reader, which resets its
// stream alone.
export function closeWhenAnsweredUnread(req: http.IncomingMessage, res: http.ServerResponse, lingerMs = 2_000): void {
  if (req.httpVersionMajor === 2) return;
  const writeHead = res.writeHead;
  res.writeHead = function (this: http.ServerResponse, ...args: unknown[]) {
    if (!req.complete) {
      this.shouldKeepAlive = false;
      // Marks the body as taken, so Node does not drain it after the answer;
      // it buffers no more than its high-water mark.
      if (!req.readableDidRead && !req.destroyed) req.read(0);
      const socket = res.socket;
      if (socket) {
        socket.destroySoon = () => {
          socket.end();
          setTimeout(() => socket.destroy(), lingerMs).unref();
        };
      }
    }
    return (writeHead as (...a: unknown[]) => http.ServerResponse).apply(this, args);
  } as typeof res.writeHead;
}

// A client that asks before sending its body (Expect: 100-continue, as curl
// does for large ones) is invited to send it only once it is admitted.
export const inviteBodyKey = createContextKey<(() => void) | undefined>(undefined, { description: "sends 100 Continue" });

export function invitation(res: http.ServerResponse): () => void {
  let sent = false;
  return () => {
    if (sent || res.headersSent) return;
    sent = true;
    res.writeContinue();
  };
}
