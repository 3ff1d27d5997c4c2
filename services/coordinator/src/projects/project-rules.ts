// What a project's settings may be, beyond the requests' protovalidate
// rules: each a problem in words, or undefined. They guard the values that
// reach git's command line and the forge's API.
const controlCharacters = /[\u0000-\u001f\u007f]/;

export function repoUrlProblem(url: string): string | undefined {
  if (controlCharacters.test(url) || /\s/.test(url)) return "repo_url may not contain spaces or control characters";
  if (/^(https|ssh|file):\/\/[^/]*\/?.+/.test(url)) return undefined;
  // scp-like: git@host:owner/repo.git
  if (/^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^-].*$/.test(url)) return undefined;
  return `repo_url must be an https://, ssh://, file:// or user@host:path URL of a git repository, got "${url}"`;
}

export function pipelinePathProblem(path: string): string | undefined {
  if (controlCharacters.test(path) || path.includes("\\")) return "pipeline_path may not contain backslashes or control characters";
  if (path.startsWith("/") || path.startsWith("-")) return `pipeline_path must be a path inside the repository, like .otto.yml or ci/pipeline.yml, got "${path}"`;
  if (path.split("/").some((segment) => segment === ".." || segment === "." || segment === "")) {
    return `pipeline_path must be a plain path inside the repository (no "..", "." or empty segments), got "${path}"`;
  }
  return undefined;
}

// git's rules for a branch name, as far as Otto relies on them.
export function branchNameProblem(branch: string, what = "default_branch"): string | undefined {
  if (
    branch === "" ||
    controlCharacters.test(branch) ||
    /[\s~^:?*[\\]/.test(branch) ||
    branch.includes("..") ||
    branch.includes("@{") ||
    branch.startsWith("-") ||
    branch.startsWith("/") ||
    branch.endsWith("/") ||
    branch.endsWith(".") ||
    branch.endsWith(".lock")
  ) {
    return `${what} must be a git branch name, got "${branch}"`;
  }
  return undefined;
}

export function globProblem(glob: string, what: string): string | undefined {
  if (!/^[A-Za-z0-9._/*-]+$/.test(glob)) return `${what} globs may hold letters, digits, . _ / - and *, got "${glob}"`;
  return undefined;
}

export const defaultApiUrls: Record<string, string | undefined> = {
  github: "https://api.github.com",
  gitlab: "https://gitlab.com/api/v4",
};

export const defaultPipelinePath = ".otto.yml";
export const defaultBranch = "main";
