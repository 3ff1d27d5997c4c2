// The SDK in a browser: the same as index.ts but for the transport (fetch,
// through @connectrpc/connect-web) and the CLI. Picked by the "browser"
// export condition.
export * from "./portable.ts";
export { createOttoClient, type BrowserClientOptions } from "./client-browser.ts";
