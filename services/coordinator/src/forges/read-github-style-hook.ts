import {
  commitShaAt,
  hasValue,
  isZeroSha,
  objectsAt,
  optionalTextAt,
  positiveIntegerAt,
  refAt,
  repositoryAt,
  valueAt,
  type Payload,
} from "./payload-fields.ts";
import type { HookReading } from "./read-hook.ts";
import { sameRepository } from "./repository-of.ts";

// GitHub's payloads, and Gitea's and Forgejo's, which copy their shape.
// Throws PayloadError when a field the event needs is missing or malformed.
export function readGitHubStyleHook(kind: "github" | "gitea", eventName: string, payload: Payload, deliveryId: string): HookReading {
  if (eventName === "push") return readPush(kind, payload, deliveryId);
  if (eventName === "pull_request") return readPullRequest(kind, payload, deliveryId);
  if (eventName === "ping") return { kind: "ignored", why: "ping", deliveryId };
  return { kind: "ignored", why: `${eventName} events do not start runs`, deliveryId };
}

function readPush(kind: "github" | "gitea", payload: Payload, deliveryId: string): HookReading {
  const ref = refAt(payload, "ref");
  const repository = repositoryAt(payload, "repository.full_name");
  const branch = ref.startsWith("refs/heads/") ? ref.slice("refs/heads/".length) : "";
  const tag = ref.startsWith("refs/tags/") ? ref.slice("refs/tags/".length) : "";
  if (branch === "" && tag === "") return { kind: "ignored", why: `a push to ${ref}, which is neither a branch nor a tag`, deliveryId };
  const what = branch !== "" ? "branch" : "tag";
  if (valueAt(payload, "deleted") === true || isZeroSha(valueAt(payload, "after"))) return { kind: "ignored", why: `${what} deleted`, deliveryId };
  const after = commitShaAt(payload, "after");
  const listsCommits = objectsAt(payload, "commits").length > 0;
  // GitHub always names the head commit of a push that has one; older Gitea
  // only lists the commits.
  if (!hasValue(payload, "head_commit") && (kind === "github" || !listsCommits)) {
    return { kind: "ignored", why: "a push that carries no commit", deliveryId };
  }
  // An annotated tag's "after" is the tag object; head_commit is the commit
  // it points to, which is what is built and what a status can be set on.
  const sha = tag !== "" && hasValue(payload, "head_commit.id") ? commitShaAt(payload, "head_commit.id") : after;
  return {
    kind: "event",
    event: { deliveryId, event: branch !== "" ? "push" : "tag", repository, ref, branch, tag, sha, headCommitMessage: pushMessage(kind, payload, after) },
  };
}

function pushMessage(kind: "github" | "gitea", payload: Payload, after: string): string {
  const head = kind === "gitea" ? objectsAt(payload, "commits").find((commit) => valueAt(commit, "id") === after) : undefined;
  if (head && typeof valueAt(head, "message") === "string") return optionalTextAt(head, "message");
  return optionalTextAt(payload, "head_commit.message");
}

const runningActions = {
  github: new Set(["opened", "synchronize", "reopened"]),
  gitea: new Set(["opened", "synchronized", "reopened"]),
};

function readPullRequest(kind: "github" | "gitea", payload: Payload, deliveryId: string): HookReading {
  const action = optionalTextAt(payload, "action");
  if (!runningActions[kind].has(action)) {
    return { kind: "ignored", why: action === "" ? "a pull request event without an action" : `pull request action "${action}" does not start runs`, deliveryId };
  }
  const number = positiveIntegerAt(payload, hasValue(payload, "number") ? "number" : "pull_request.number");
  const repository = repositoryAt(payload, "repository.full_name");
  const headRef = refAt(payload, "pull_request.head.ref");
  const headSha = commitShaAt(payload, "pull_request.head.sha");
  const baseRef = refAt(payload, "pull_request.base.ref");
  const baseRepository = repositoryAt(payload, "pull_request.base.repo.full_name");
  // A pull request whose fork was deleted has no head repository; its head
  // is still fetchable from the base, and it stays a fork's.
  const headRepository = hasValue(payload, "pull_request.head.repo") ? repositoryAt(payload, "pull_request.head.repo.full_name") : "";
  const fromFork = !sameRepository(headRepository, baseRepository);
  return {
    kind: "event",
    event: {
      deliveryId,
      event: "pull_request",
      repository,
      ref: `refs/pull/${number}/head`,
      branch: headRef,
      tag: "",
      sha: headSha,
      headCommitMessage: "",
      pullRequest: { number, action, headRef, headSha, baseRef, headRepository, baseRepository, fromFork },
    },
  };
}
