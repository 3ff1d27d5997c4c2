// The SDK in Node: typed clients over @connectrpc/connect-node, and the rest
// of portable.ts.
export * from "./portable.ts";
export { createOttoClient, type OttoClientOptions } from "./client.ts";
