import type { IncomingMessage } from "node:http";
import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import type { Admission } from "./authorize.ts";
import type { BodiesInFlight } from "./bodies-in-flight.ts";
import { callerKey, peerKey } from "./caller.ts";
import { peerIdentityOf } from "./peer-identity.ts";
import { countRefusedCall } from "./rpc-metrics.ts";
import { inviteBodyKey } from "./unread-bodies.ts";

export const remoteAddressKey = createContextKey<string | undefined>(undefined, { description: "the caller's IP address" });
const bodyPlaceKey = createContextKey<(() => void) | undefined>(undefined, { description: "gives the body's place back" });

// Who is calling is settled from the headers alone, before a byte of the
// body is read: a caller without a valid token is refused unread (the
// server then closes the connection without reading the rest: see
// unread-bodies.ts), and one with its maximum of bodies in flight waits for
// a place, its body unread (see bodies-in-flight.ts).
export class BodyGate {
  readonly #admit: Admission;
  readonly #bodies: BodiesInFlight;

  constructor(admit: Admission, bodies: BodiesInFlight) {
    this.#admit = admit;
    this.#bodies = bodies;
  }

  // Connect's request gate, which runs before the body is received. The
  // body's place is given back once its message is decoded (bodyDecoded
  // below) or the call ends.
  readonly connect = async (context: HandlerContext): Promise<void> => {
    try {
      const { caller, decoded } = await this.#enter({
        service: context.service.typeName,
        method: context.method.name,
        authorization: context.requestHeader.get("authorization"),
        peer: context.values.get(peerKey),
        remoteAddress: context.values.get(remoteAddressKey),
        hasBody: context.requestMethod === "POST",
        signal: context.signal,
      });
      context.values.set(callerKey, caller);
      context.values.set(bodyPlaceKey, decoded);
      context.values.get(inviteBodyKey)?.();
    } catch (err) {
      countRefusedCall(`${context.service.typeName}/${context.method.name}`, err);
      throw err;
    }
  };

  // The same for a request whose body is read by hand (the plain-JSON stream
  // form): call `decoded` once it is. `invite` asks for a body held back
  // (100 Continue); `signal` ends with the request.
  async node(req: IncomingMessage, service: string, method: string, signal: AbortSignal, invite?: () => void): Promise<{ decoded: () => void }> {
    try {
      const admitted = await this.#enter({
        service,
        method,
        authorization: req.headers.authorization ?? null,
        peer: peerIdentityOf(req),
        remoteAddress: req.socket.remoteAddress,
        hasBody: true,
        signal,
      });
      invite?.();
      return admitted;
    } catch (err) {
      countRefusedCall(`${service}/${method}`, err);
      throw err;
    }
  }

  // Admits the caller and takes a place for its body, given back when the
  // request ends if not before (at once if it ended while being admitted).
  async #enter(call: Parameters<Admission>[0] & { remoteAddress: string | undefined; hasBody: boolean; signal: AbortSignal }) {
    const caller = await this.#admit(call);
    if (!call.hasBody) return { caller, decoded: () => {} };
    const decoded = await this.#bodies.take(caller, call.remoteAddress, call.signal);
    if (call.signal.aborted) decoded();
    else call.signal.addEventListener("abort", decoded, { once: true });
    return { caller, decoded };
  }
}

// Gives a body's place back as soon as its message is decoded: interceptors
// see a unary request decoded, a stream's first message when it arrives.
export const bodyDecoded: Interceptor = (next) => async (req) => {
  const decoded = req.contextValues.get(bodyPlaceKey);
  if (!decoded) return next(req);
  if (!req.stream) {
    decoded();
    return next(req);
  }
  const messages = req.message;
  return next({
    ...req,
    message: (async function* () {
      try {
        for await (const message of messages) {
          decoded();
          yield message;
        }
      } finally {
        decoded();
      }
    })(),
  });
};
