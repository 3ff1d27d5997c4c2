import type { ForgeKind } from "./forge-kind.ts";
import { PayloadError, type Payload } from "./payload-fields.ts";
import { readGitHubStyleHook } from "./read-github-style-hook.ts";
import { readGitLabHook } from "./read-gitlab-hook.ts";

export interface PullRequestInfo {
  number: number;
  action: string;
  headRef: string;
  headSha: string;
  baseRef: string;
  headRepository: string;
  baseRepository: string;
  fromFork: boolean;
}

// What a verified webhook delivery asks Otto to build.
export interface ForgeEvent {
  deliveryId: string;
  event: "push" | "tag" | "pull_request";
  repository: string;
  ref: string;
  branch: string;
  tag: string;
  sha: string;
  headCommitMessage: string;
  pullRequest?: PullRequestInfo;
}

export type HookReading =
  | { kind: "event"; event: ForgeEvent }
  | { kind: "ignored"; why: string; deliveryId: string }
  | { kind: "bad"; why: string };

interface HookHeaders {
  event: string[];
  delivery: string[];
  missingEvent: string;
}

const hookHeaders: Record<ForgeKind, HookHeaders> = {
  github: { event: ["x-github-event"], delivery: ["x-github-delivery"], missingEvent: "missing X-GitHub-Event header" },
  gitea: {
    event: ["x-gitea-event", "x-forgejo-event"],
    delivery: ["x-gitea-delivery", "x-forgejo-delivery"],
    missingEvent: "missing X-Gitea-Event (or X-Forgejo-Event) header",
  },
  gitlab: { event: ["x-gitlab-event"], delivery: ["idempotency-key", "x-gitlab-event-uuid"], missingEvent: "missing X-Gitlab-Event header" },
};

const forgeNames: Record<ForgeKind, string> = { github: "GitHub", gitea: "Gitea", gitlab: "GitLab" };

// Reads a delivery whose signature has already been checked. Nothing here
// is interpreted beyond picking strings and numbers out of the payload.
export function readHook(kind: ForgeKind, headers: Record<string, string>, body: Uint8Array): HookReading {
  if (!Object.hasOwn(hookHeaders, kind)) return { kind: "bad", why: `not a forge Otto knows: ${JSON.stringify(kind)}` };
  const names = hookHeaders[kind];
  const eventName = firstHeader(headers, names.event);
  if (eventName === "") return { kind: "bad", why: names.missingEvent };
  const deliveryId = firstHeader(headers, names.delivery);
  const payload = payloadOf(body);
  if (typeof payload === "string") return { kind: "bad", why: payload };
  try {
    return kind === "gitlab" ? readGitLabHook(eventName, payload, deliveryId) : readGitHubStyleHook(kind, eventName, payload, deliveryId);
  } catch (err) {
    if (err instanceof PayloadError) return { kind: "bad", why: `${forgeNames[kind]} ${eventName} payload: ${err.message}` };
    throw err;
  }
}

function firstHeader(headers: Record<string, string>, names: string[]): string {
  for (const name of names) {
    const value = headers[name]?.trim();
    if (value) return value;
  }
  return "";
}

// The payload, or why the body is not one.
function payloadOf(body: Uint8Array): Payload | string {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return "body is not valid UTF-8";
  }
  // GitHub's and Gitea's other content type: the JSON as the form field
  // `payload` (the signature is over the body as it came).
  const form = text.startsWith("payload=") ? new URLSearchParams(text).get("payload") : undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(form ?? text);
  } catch (err) {
    return `body is not JSON (${(err as Error).message})`;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return "body is not a JSON object";
  return parsed as Payload;
}
