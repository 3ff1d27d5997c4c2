// A commit status is one HTTP request to the forge's API: the right URL,
// credentials in the forge's header, and the forge's own words for the state.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { statusRequest, type CommitStatus, type StatusState } from "@otto/coordinator/forges/status-request";

const sha = "9b2e4c1d7a3f5e8b0c6d2a4f1e3b5c7d9e0f1a2b";
const status: CommitStatus = {
  state: "success",
  context: "otto/build",
  description: "3 jobs passed in 2m 10s",
  targetUrl: "https://otto.example.com/runs/42",
};

describe("commit status requests", () => {
  it("posts a GitHub status to /repos/{owner}/{repo}/statuses/{sha} with a token and GitHub's media type", () => {
    assert.deepEqual(statusRequest("github", "https://api.github.com", "acme/app", sha, status, "ghp_secret"), {
      url: `https://api.github.com/repos/acme/app/statuses/${sha}`,
      method: "POST",
      headers: {
        Authorization: "token ghp_secret",
        "Content-Type": "application/json",
        Accept: "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "otto",
      },
      body: JSON.stringify({ state: "success", target_url: "https://otto.example.com/runs/42", description: "3 jobs passed in 2m 10s", context: "otto/build" }),
    });
  });

  it("posts a Gitea status to the same path under Gitea's API, with the same state words", () => {
    for (const state of ["pending", "success", "failure", "error"] as StatusState[]) {
      assert.deepEqual(statusRequest("gitea", "https://gitea.example.com/api/v1", "acme/app", sha, { ...status, state }, "gitea_token"), {
        url: `https://gitea.example.com/api/v1/repos/acme/app/statuses/${sha}`,
        method: "POST",
        headers: { Authorization: "token gitea_token", "Content-Type": "application/json", Accept: "application/json", "User-Agent": "otto" },
        body: JSON.stringify({ state, target_url: "https://otto.example.com/runs/42", description: "3 jobs passed in 2m 10s", context: "otto/build" }),
      });
    }
  });

  it("posts a GitLab status to the project's encoded path with PRIVATE-TOKEN and GitLab's state words", () => {
    const words: Record<StatusState, string> = { pending: "pending", success: "success", failure: "failed", error: "canceled" };
    for (const [state, word] of Object.entries(words) as [StatusState, string][]) {
      assert.deepEqual(statusRequest("gitlab", "https://gitlab.example.com/api/v4", "acme/platform/app", sha, { ...status, state }, "glpat-secret"), {
        url: `https://gitlab.example.com/api/v4/projects/acme%2Fplatform%2Fapp/statuses/${sha}`,
        method: "POST",
        headers: { "PRIVATE-TOKEN": "glpat-secret", "Content-Type": "application/json", Accept: "application/json", "User-Agent": "otto" },
        body: JSON.stringify({ state: word, name: "otto/build", target_url: "https://otto.example.com/runs/42", description: "3 jobs passed in 2m 10s" }),
      });
    }
  });

  it("drops one trailing slash from the API URL", () => {
    assert.equal(statusRequest("github", "https://api.github.com/", "acme/app", sha, status, "t").url, `https://api.github.com/repos/acme/app/statuses/${sha}`);
    assert.equal(statusRequest("gitlab", "https://gitlab.example.com/api/v4/", "acme/app", sha, status, "t").url, `https://gitlab.example.com/api/v4/projects/acme%2Fapp/statuses/${sha}`);
  });

  it("encodes the owner and repository as path segments", () => {
    assert.equal(statusRequest("gitea", "https://gitea.example.com/api/v1", "ac me/a#p?x=1", sha, status, "t").url, `https://gitea.example.com/api/v1/repos/ac%20me/a%23p%3Fx%3D1/statuses/${sha}`);
  });

  it("cuts the description to 140 characters without splitting a character", () => {
    const long = `${"x".repeat(139)}🙂 and more`;
    const body = JSON.parse(statusRequest("github", "https://api.github.com", "acme/app", sha, { ...status, description: long }, "t").body);
    assert.equal(body.description, `${"x".repeat(139)}🙂`);
    const gitlab = JSON.parse(statusRequest("gitlab", "https://gitlab.example.com/api/v4", "acme/app", sha, { ...status, description: "y".repeat(500) }, "t").body);
    assert.equal(gitlab.description, "y".repeat(140));
  });

  it("leaves out an empty target URL", () => {
    const body = JSON.parse(statusRequest("github", "https://api.github.com", "acme/app", sha, { ...status, targetUrl: "" }, "t").body);
    assert.deepEqual(body, { state: "success", description: "3 jobs passed in 2m 10s", context: "otto/build" });
  });

  it("refuses to build a request from a bad SHA, repository, API URL or token", () => {
    const bad: [string, () => unknown, RegExp][] = [
      ["short sha", () => statusRequest("github", "https://api.github.com", "acme/app", sha.slice(0, 7), status, "t"), /not a commit SHA/],
      ["uppercase sha", () => statusRequest("github", "https://api.github.com", "acme/app", sha.toUpperCase(), status, "t"), /not a commit SHA/],
      ["path in sha", () => statusRequest("gitea", "https://gitea.example.com/api/v1", "acme/app", `${sha}/../../admin`, status, "t"), /not a commit SHA/],
      ["one segment", () => statusRequest("github", "https://api.github.com", "acme", sha, status, "t"), /"owner\/repo"/],
      ["three segments", () => statusRequest("github", "https://api.github.com", "acme/platform/app", sha, status, "t"), /"owner\/repo"/],
      ["empty segment", () => statusRequest("gitlab", "https://gitlab.example.com/api/v4", "acme/", sha, status, "t"), /GitLab project path/],
      ["dot segment", () => statusRequest("gitea", "https://gitea.example.com/api/v1", "acme/..", sha, status, "t"), /"owner\/repo"/],
      ["dot segment in a project path", () => statusRequest("gitlab", "https://gitlab.example.com/api/v4", "acme/../app", sha, status, "t"), /GitLab project path/],
      ["not a URL", () => statusRequest("github", "api.github.com", "acme/app", sha, status, "t"), /not an API URL/],
      ["not http", () => statusRequest("github", "file:///etc", "acme/app", sha, status, "t"), /not an http\(s\) API URL/],
      ["query", () => statusRequest("github", "https://api.github.com/?x=1", "acme/app", sha, status, "t"), /no query/],
      ["empty token", () => statusRequest("github", "https://api.github.com", "acme/app", sha, status, ""), /token/],
      ["token with a newline", () => statusRequest("gitlab", "https://gitlab.example.com/api/v4", "acme/app", sha, status, "t\r\nX-Evil: 1"), /token/],
      ["unknown forge", () => statusRequest("bitbucket" as never, "https://api.bitbucket.org", "acme/app", sha, status, "t"), /not a forge/],
    ];
    for (const [what, build, why] of bad) assert.throws(build, why, what);
  });

  it("arrives at a real HTTP server as built", async () => {
    const arrived: { method?: string; url?: string; headers?: IncomingHttpHeaders; body?: string }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        arrived.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(201, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const request = statusRequest("gitlab", `http://127.0.0.1:${port}/api/v4/`, "acme/platform/app", sha, { ...status, state: "failure" }, "glpat-secret");
      const response = await fetch(request.url, { method: request.method, headers: request.headers, body: request.body });
      assert.equal(response.status, 201);
      assert.equal(arrived.length, 1);
      const [got] = arrived;
      assert.equal(got.method, "POST");
      assert.equal(got.url, `/api/v4/projects/acme%2Fplatform%2Fapp/statuses/${sha}`);
      assert.equal(got.headers?.["private-token"], "glpat-secret");
      assert.equal(got.headers?.["content-type"], "application/json");
      assert.equal(got.headers?.["user-agent"], "otto");
      assert.equal(got.headers?.authorization, undefined);
      assert.deepEqual(JSON.parse(got.body ?? ""), { state: "failed", name: "otto/build", target_url: "https://otto.example.com/runs/42", description: "3 jobs passed in 2m 10s" });

      const github = statusRequest("github", `http://127.0.0.1:${port}`, "acme/app", sha, status, "ghp_secret");
      await (await fetch(github.url, { method: github.method, headers: github.headers, body: github.body })).text();
      assert.equal(arrived[1].url, `/repos/acme/app/statuses/${sha}`);
      assert.equal(arrived[1].headers?.authorization, "token ghp_secret");
      assert.equal(arrived[1].headers?.accept, "application/vnd.github+json");
      assert.equal(arrived[1].body, github.body);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
