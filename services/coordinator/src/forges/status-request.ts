import type { ForgeKind } from "./forge-kind.ts";

export type StatusState = "pending" | "success" | "failure" | "error";

export interface CommitStatus {
  state: StatusState;
  context: string;
  description: string;
  targetUrl: string;
}

export interface StatusRequest {
  url: string;
  method: "POST";
  headers: Record<string, string>;
  body: string;
}

// GitHub refuses a longer description.
export const maxDescriptionLength = 140;

const gitlabStates: Record<StatusState, string> = { pending: "pending", success: "success", failure: "failed", error: "canceled" };

// The HTTP request that sets a commit status on the forge. Throws on
// arguments that cannot make a valid request (a bad API URL, repository name,
// SHA or token), which are configuration mistakes, not the forge's answer.
export function statusRequest(kind: ForgeKind, apiUrl: string, repository: string, sha: string, status: CommitStatus, token: string): StatusRequest {
  const base = apiBase(apiUrl);
  if (!/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(sha)) throw new Error(`not a commit SHA (40 or 64 lowercase hex digits): ${JSON.stringify(sha)}`);
  if (token === "" || /[\u0000-\u001f\u007f]/.test(token)) throw new Error("the forge token is empty or has characters a header cannot carry");
  const description = Array.from(status.description).slice(0, maxDescriptionLength).join("");
  // An empty target URL is left out: forges check the field as a URL.
  const targetUrl = status.targetUrl === "" ? {} : { target_url: status.targetUrl };
  if (kind === "gitlab") {
    const segments = repository.split("/");
    if (segments.length < 2 || segments.some(notAName)) throw new Error(`not a GitLab project path: ${JSON.stringify(repository)}`);
    return {
      url: `${base}/projects/${encodeURIComponent(repository)}/statuses/${sha}`,
      method: "POST",
      headers: { "PRIVATE-TOKEN": token, "Content-Type": "application/json", Accept: "application/json", "User-Agent": "otto" },
      body: JSON.stringify({ state: gitlabStates[status.state], name: status.context, ...targetUrl, description }),
    };
  }
  if (kind !== "github" && kind !== "gitea") throw new Error(`not a forge Otto knows: ${JSON.stringify(kind)}`);
  const segments = repository.split("/");
  if (segments.length !== 2 || segments.some(notAName)) throw new Error(`not an "owner/repo" repository name: ${JSON.stringify(repository)}`);
  const [owner, repo] = segments.map(encodeURIComponent);
  const headers: Record<string, string> =
    kind === "github"
      ? { Authorization: `token ${token}`, "Content-Type": "application/json", Accept: "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "otto" }
      : { Authorization: `token ${token}`, "Content-Type": "application/json", Accept: "application/json", "User-Agent": "otto" };
  return {
    url: `${base}/repos/${owner}/${repo}/statuses/${sha}`,
    method: "POST",
    headers,
    body: JSON.stringify({ state: status.state, ...targetUrl, description, context: status.context }),
  };
}

// Empty and dot segments would make a URL that resolves somewhere else.
function notAName(segment: string): boolean {
  return segment === "" || segment === "." || segment === "..";
}

function apiBase(apiUrl: string): string {
  let parsed: URL;
  try {
    parsed = new URL(apiUrl);
  } catch {
    throw new Error(`not an API URL: ${JSON.stringify(apiUrl)}`);
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new Error(`not an http(s) API URL: ${JSON.stringify(apiUrl)}`);
  if (parsed.search !== "" || parsed.hash !== "") throw new Error(`an API URL takes no query or fragment: ${JSON.stringify(apiUrl)}`);
  return apiUrl.endsWith("/") ? apiUrl.slice(0, -1) : apiUrl;
}
