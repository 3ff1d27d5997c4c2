// What every page gets from the signed-in session: the SDK's client,
// `may`, whether the token's scopes allow an action (WhoAmI's answer), and
// `fail`, which turns an error into Otto's message (and signs out when the
// token was refused).
import { createContext } from "preact";
import { useContext } from "preact/hooks";
import type { Scope } from "@otto/contracts/scopes";
import type { OttoClient } from "@otto/sdk";

export interface Session {
  client: OttoClient;
  may(scope: Scope): boolean;
  fail(err: unknown): string;
}

export const SessionContext = createContext<Session | undefined>(undefined);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in page");
  return session;
}
