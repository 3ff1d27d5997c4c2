import { createHmac, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

// Webhook deliveries shaped like the forges' own (the fixtures under
// test/fixtures/forges), pointed at a test's repository and commit, with
// the headers each forge sends.
const fixture = (name: string) => JSON.parse(readFileSync(join(import.meta.dirname, "..", "fixtures", "forges", `${name}.json`), "utf8"));

export interface Delivery {
  headers: Record<string, string>;
  body: string;
}

export function hmac(secret: string, body: string | Buffer): string {
  return createHmac("sha256", secret).update(body).digest("hex");
}

export function githubPush(o: { secret: string; repository: string; sha: string; ref?: string; message?: string; delivery?: string }): Delivery {
  const payload = fixture("github-push");
  payload.ref = o.ref ?? "refs/heads/main";
  payload.after = o.sha;
  payload.repository.full_name = o.repository;
  payload.head_commit.id = o.sha;
  payload.head_commit.message = o.message ?? "change";
  payload.commits = [{ ...payload.commits[0], id: o.sha, message: o.message ?? "change" }];
  return github("push", payload, o.secret, o.delivery);
}

export function githubPullRequest(o: { secret: string; repository: string; headRepository: string; sha: string; number: number; action?: string; branch?: string }): Delivery {
  const payload = fixture("github-pull-request-opened");
  payload.action = o.action ?? "opened";
  payload.number = o.number;
  payload.pull_request.number = o.number;
  payload.pull_request.head.sha = o.sha;
  payload.pull_request.head.ref = o.branch ?? "feature";
  payload.pull_request.head.repo.full_name = o.headRepository;
  payload.pull_request.base.repo.full_name = o.repository;
  payload.repository.full_name = o.repository;
  return github("pull_request", payload, o.secret);
}

export function githubPing(secret: string): Delivery {
  return github("ping", fixture("github-ping"), secret);
}

function github(event: string, payload: unknown, secret: string, delivery: string = randomUUID()): Delivery {
  const body = JSON.stringify(payload);
  return {
    body,
    headers: { "content-type": "application/json", "x-github-event": event, "x-github-delivery": delivery, "x-hub-signature-256": `sha256=${hmac(secret, body)}` },
  };
}

export function giteaPush(o: { secret: string; repository: string; sha: string; ref?: string }): Delivery {
  const payload = fixture("gitea-push");
  payload.ref = o.ref ?? "refs/heads/main";
  payload.after = o.sha;
  payload.repository.full_name = o.repository;
  payload.head_commit.id = o.sha;
  payload.commits = [{ ...payload.commits[0], id: o.sha }];
  const body = JSON.stringify(payload);
  return { body, headers: { "content-type": "application/json", "x-gitea-event": "push", "x-gitea-delivery": randomUUID(), "x-gitea-signature": hmac(o.secret, body) } };
}

export function gitlabPush(o: { secret: string; repository: string; sha: string; ref?: string }): Delivery {
  const payload = fixture("gitlab-push");
  payload.ref = o.ref ?? "refs/heads/main";
  payload.after = o.sha;
  payload.checkout_sha = o.sha;
  payload.project.path_with_namespace = o.repository;
  payload.commits = [{ ...payload.commits[0], id: o.sha }];
  const body = JSON.stringify(payload);
  return { body, headers: { "content-type": "application/json", "x-gitlab-event": "Push Hook", "x-gitlab-event-uuid": randomUUID(), "x-gitlab-token": o.secret } };
}
