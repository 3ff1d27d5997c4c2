// The "owner/repo" a repository URL names, to match against the repository
// a webhook delivery is about: the URL's last two path segments without
// ".git". Works for https://host/owner/repo.git, ssh://git@host:22/owner/repo,
// scp-like git@host:owner/repo.git and local paths or file:// URLs. A URL
// with fewer than two path segments names no repository: "".
export function repositoryOf(repoUrl: string): string {
  const segments = pathOf(repoUrl.trim()).split("/").filter((segment) => segment !== "");
  if (segments.length < 2) return "";
  const [owner, repo] = segments.slice(-2).map(decoded);
  const name = repo.endsWith(".git") ? repo.slice(0, -".git".length) : repo;
  return name === "" ? "" : `${owner}/${name}`;
}

// Forges treat owner and repository names case-insensitively.
export function sameRepository(a: string, b: string): boolean {
  return a !== "" && a.toLowerCase() === b.toLowerCase();
}

function pathOf(repoUrl: string): string {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(repoUrl)) {
    try {
      return new URL(repoUrl).pathname;
    } catch {
      return "";
    }
  }
  // scp-like syntax, user@host:path; git reads a colon before any slash so.
  const scp = /^[^/]*?:(.*)$/.exec(repoUrl);
  return scp ? scp[1] : repoUrl;
}

function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
