import {
  PayloadError,
  commitShaAt,
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

// GitLab's payloads. Throws PayloadError when a field the event needs is
// missing or malformed.
export function readGitLabHook(eventName: string, payload: Payload, deliveryId: string): HookReading {
  if (eventName === "Push Hook") return readPush("branch", payload, deliveryId);
  if (eventName === "Tag Push Hook") return readPush("tag", payload, deliveryId);
  if (eventName === "Merge Request Hook") return readMergeRequest(payload, deliveryId);
  return { kind: "ignored", why: `${eventName} events do not start runs`, deliveryId };
}

function readPush(what: "branch" | "tag", payload: Payload, deliveryId: string): HookReading {
  const ref = refAt(payload, "ref");
  const repository = repositoryAt(payload, "project.path_with_namespace");
  const prefix = what === "branch" ? "refs/heads/" : "refs/tags/";
  if (!ref.startsWith(prefix)) throw new PayloadError(`ref must start with ${prefix}, got ${JSON.stringify(ref)}`);
  const after = valueAt(payload, "after");
  const checkout = valueAt(payload, "checkout_sha");
  if (after === null || isZeroSha(after) || checkout === null || isZeroSha(checkout)) return { kind: "ignored", why: `${what} deleted`, deliveryId };
  // checkout_sha is the commit; for an annotated tag "after" is the tag object.
  const sha = commitShaAt(payload, "checkout_sha");
  const name = ref.slice(prefix.length);
  return {
    kind: "event",
    event: {
      deliveryId,
      event: what === "branch" ? "push" : "tag",
      repository,
      ref,
      branch: what === "branch" ? name : "",
      tag: what === "tag" ? name : "",
      sha,
      headCommitMessage: pushMessage(payload, sha, after),
    },
  };
}

function pushMessage(payload: Payload, sha: string, after: unknown): string {
  const commits = objectsAt(payload, "commits");
  const head = commits.find((commit) => valueAt(commit, "id") === sha || valueAt(commit, "id") === after) ?? commits.at(-1);
  return head ? optionalTextAt(head, "message") : "";
}

function readMergeRequest(payload: Payload, deliveryId: string): HookReading {
  const action = optionalTextAt(payload, "object_attributes.action");
  if (action === "") return { kind: "ignored", why: "a merge request event without an action", deliveryId };
  const oldrev = valueAt(payload, "object_attributes.oldrev");
  // GitLab sends "update" for any edit (title, labels, assignees); only one
  // that brings new commits carries the previous head as oldrev.
  if (action === "update" && (typeof oldrev !== "string" || oldrev === "")) {
    return { kind: "ignored", why: "a merge request update that brings no new commits", deliveryId };
  }
  if (action !== "open" && action !== "reopen" && action !== "update") {
    return { kind: "ignored", why: `merge request action "${action}" does not start runs`, deliveryId };
  }
  const number = positiveIntegerAt(payload, "object_attributes.iid");
  const repository = repositoryAt(payload, "project.path_with_namespace");
  const headRef = refAt(payload, "object_attributes.source_branch");
  const baseRef = refAt(payload, "object_attributes.target_branch");
  const headSha = commitShaAt(payload, "object_attributes.last_commit.id");
  const headRepository = repositoryAt(payload, "object_attributes.source.path_with_namespace");
  const baseRepository = repositoryAt(payload, "object_attributes.target.path_with_namespace");
  return {
    kind: "event",
    event: {
      deliveryId,
      event: "pull_request",
      repository,
      ref: `refs/merge-requests/${number}/head`,
      branch: headRef,
      tag: "",
      sha: headSha,
      headCommitMessage: optionalTextAt(payload, "object_attributes.last_commit.message"),
      pullRequest: { number, action, headRef, headSha, baseRef, headRepository, baseRepository, fromFork: !sameRepository(headRepository, baseRepository) },
    },
  };
}
