import type { TLSSocket } from "node:tls";
import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";

// Otto's processes carry their kind in a URI SAN of their certificate:
// spiffe://otto/<kind>/<name>. A caller presenting such a certificate,
// signed by the CA the server trusts, is that kind of Otto process.
export function identityUri(kind: string, name: string): string {
  return `spiffe://otto/${kind}/${name}`;
}

export interface PeerIdentity {
  kind: string;
  name: string;
}

// Read once per connection: a certificate does not change while its
// connection lasts (servers refuse renegotiation: see server.ts), and
// getPeerCertificate() builds a whole object from it on every call.
// Over HTTP/2, req.socket is a new proxy of the session's TLS socket for
// each request: the session stands for the connection.
const known = new WeakMap<object, PeerIdentity | null>();

export function peerIdentityOf(req: IncomingMessage): PeerIdentity | undefined {
  const socket = req.socket as TLSSocket;
  if (!socket.encrypted || !socket.authorized) return undefined;
  const connection = (req.httpVersionMajor === 2 && (req as unknown as Http2ServerRequest).stream.session) || socket;
  let identity = known.get(connection);
  if (identity === undefined) {
    identity = identityIn(socket.getPeerCertificate()?.subjectaltname ?? "");
    known.set(connection, identity);
  }
  return identity ?? undefined;
}

function identityIn(san: string): PeerIdentity | null {
  for (const entry of san.split(", ")) {
    const match = /^URI:spiffe:\/\/otto\/([a-z-]+)\/([A-Za-z0-9._-]+)$/.exec(entry);
    if (match) return { kind: match[1], name: match[2] };
  }
  return null;
}
