// The signed-in person's API token: kept in sessionStorage (this tab only,
// gone when it closes), sent as the bearer header by the SDK's client, never
// put in a URL or a cookie.
import { Code, ConnectError } from "@connectrpc/connect";
import { createOttoClient, type OttoClient } from "@otto/sdk";

const key = "otto.token";

export function storedToken(): string | undefined {
  return sessionStorage.getItem(key) ?? undefined;
}

export function storeToken(token: string): void {
  sessionStorage.setItem(key, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(key);
}

export function clientFor(token: string): OttoClient {
  // The page shows, and recovers from, an Otto it cannot reach itself.
  return createOttoClient({ token, retryForMs: 0 });
}

// Otto's own words for what went wrong.
export function messageOf(err: unknown): string {
  const error = ConnectError.from(err);
  return error.rawMessage || String(error.code);
}

export function isUnauthenticated(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Unauthenticated;
}

export function isAbort(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled || (err instanceof Error && err.name === "AbortError");
}
