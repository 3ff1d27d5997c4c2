import http from "node:http";
import https from "node:https";

// Connect's HTTP/1.1 client sends a request's headers at once, then its body
// as a chunk once it is encoded, then the chunked body's end after the
// chunk's write has completed: three TLS records and system calls per call.
// An agent made here corks each request's socket until the turn of the
// event loop in which the request was made is over, so the headers and the
// body leave in one write (the end follows on its own: Connect waits for
// the body's write before it ends the request).
export function oneWriteAgent(tls: https.AgentOptions | undefined): http.Agent {
  const agent = tls ? new https.Agent({ keepAlive: true, ...tls }) : new http.Agent({ keepAlive: true });
  const addRequest = (agent as unknown as { addRequest: (req: http.ClientRequest, options: unknown) => void }).addRequest;
  Object.assign(agent, {
    addRequest(this: http.Agent, req: http.ClientRequest, options: unknown) {
      req.once("socket", (socket) => {
        socket.cork();
        setImmediate(() => socket.uncork());
      });
      return addRequest.call(this, req, options);
    },
  });
  return agent;
}
