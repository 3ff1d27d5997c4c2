import type { ForgeEvent } from "../forges/read-hook.ts";
import { anyGlobMatches } from "./ref-glob.ts";

// Whether a forge's event runs the project, and why not when it does not:
// pushes to the project's branches (all of them when it names none) unless
// the head commit says [skip ci], tags the project names (none unless it
// names some), and every pull request.
export function whyEventDoesNotRun(project: { branches: string[]; tags: string[] }, event: ForgeEvent): string | undefined {
  switch (event.event) {
    case "push":
      if (/\[(skip ci|ci skip)\]/i.test(event.headCommitMessage)) return "the head commit's message says [skip ci]";
      if (project.branches.length > 0 && !anyGlobMatches(project.branches, event.branch)) {
        return `branch ${event.branch} matches none of the project's branches (${project.branches.join(", ")})`;
      }
      return undefined;
    case "tag":
      if (project.tags.length === 0) return "the project runs no tags (give it tag globs to run them)";
      if (!anyGlobMatches(project.tags, event.tag)) return `tag ${event.tag} matches none of the project's tags (${project.tags.join(", ")})`;
      return undefined;
    case "pull_request":
      return undefined;
  }
}
