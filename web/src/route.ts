// The page's address: which page, and what it shows. Paths the gateway
// answers with the single page: /, /runs/{id}, /runs/{id}/jobs/{job},
// /agents, /projects.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "runs"; state: string; pipeline: string }
  | { page: "run"; runId: string }
  | { page: "log"; runId: string; job: string; attempt: number; line: number }
  | { page: "agents" }
  | { page: "projects" }
  | { page: "missing"; path: string };

export function routeOf(location: { pathname: string; search: string; hash: string }): Route {
  const query = new URLSearchParams(location.search);
  if (location.pathname === "/") return { page: "runs", state: query.get("state") ?? "", pipeline: query.get("pipeline") ?? "" };
  if (/^\/agents\/?$/.test(location.pathname)) return { page: "agents" };
  if (/^\/projects\/?$/.test(location.pathname)) return { page: "projects" };
  const run = /^\/runs\/([0-9a-f-]{36})\/?$/.exec(location.pathname);
  if (run) return { page: "run", runId: run[1] };
  const job = /^\/runs\/([0-9a-f-]{36})\/jobs\/([^/]+)\/?$/.exec(location.pathname);
  if (job) {
    const line = /^#L(\d+)$/.exec(location.hash);
    return {
      page: "log",
      runId: job[1],
      job: safeDecode(job[2]),
      attempt: Number(query.get("attempt") ?? 0) || 0,
      line: line ? Number(line[1]) : 0,
    };
  }
  return { page: "missing", path: location.pathname };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export const runPath = (runId: string) => `/runs/${runId}`;
export const jobPath = (runId: string, job: string, attempt = 0) =>
  `/runs/${runId}/jobs/${encodeURIComponent(job)}${attempt > 0 ? `?attempt=${attempt}` : ""}`;

const listeners = new Set<() => void>();

export function navigate(href: string): void {
  history.pushState(null, "", href);
  for (const listener of listeners) listener();
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => routeOf(location));
  useEffect(() => {
    const update = () => setRoute(routeOf(location));
    listeners.add(update);
    addEventListener("popstate", update);
    addEventListener("hashchange", update);
    return () => {
      listeners.delete(update);
      removeEventListener("popstate", update);
      removeEventListener("hashchange", update);
    };
  }, []);
  return route;
}
