// A project whose forge posts webhooks: a signed push or pull request
// becomes a run of the pipeline file at that commit, in a checkout of it;
// everything unsigned, malformed or about another repository is refused
// with the right status and starts nothing.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import https from "node:https";
import { randomUUID } from "node:crypto";
import { readLogLines, waitForRun, RunState, type Run } from "@otto/sdk";
import { createTestRepo, type TestRepo } from "./helpers/git-repo.ts";
import { githubPing, githubPullRequest, githubPush, giteaPush, gitlabPush, hmac, type Delivery } from "./helpers/forge-payloads.ts";
import { postJson, request, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

const pipelineFile = (name: string) => `name: ${name}
jobs:
  build:
    secrets: [DEPLOY_KEY]
    steps:
      - name: show
        run: |
          test -f README.md
          echo "project=$OTTO_PROJECT number=$OTTO_RUN_NUMBER event=$OTTO_EVENT branch=$OTTO_BRANCH pr=$OTTO_PULL_REQUEST"
          echo "ref=[$OTTO_REF]"
          echo "sha=$OTTO_SHA head=$(git rev-parse HEAD)"
          echo "secret=\${DEPLOY_KEY:-withheld}"
  bare:
    checkout: false
    steps:
      - run: test ! -e README.md && test ! -e .git
`;

describe("forge webhooks", () => {
  let otto: TestOtto;
  let repo: TestRepo;
  let first: string;
  let second: string;
  const secrets: Record<string, string> = {};

  const post = (path: string, delivery: Delivery | { headers: Record<string, string>; body: string | Buffer }) =>
    request(otto.gatewayUrl + path, { method: "POST", headers: { ...delivery.headers, authorization: null }, body: delivery.body });
  const runsOf = async (project: string) => (await otto.client.runs.listRuns({ project, pageSize: 100 })).runs.length;
  const logOf = async (run: Run, job: string) => {
    const lines: string[] = [];
    for await (const line of readLogLines(otto.client, run.id, job)) lines.push(line.text);
    return lines.join("\n");
  };
  const started = async (response: { status: number; text: string }) => {
    assert.equal(response.status, 202, response.text);
    const { runId } = JSON.parse(response.text);
    return waitForRun(otto.client, runId);
  };

  before(async () => {
    otto = await startTestOtto({ agents: 1 });
    await otto.client.admin.setSecret({ name: "DEPLOY_KEY", value: "hunter2-deploy" });
    repo = await createTestRepo(await stepsSharedDir(otto, "repos"));
    first = await repo.commit({ "README.md": "hello\n", ".otto.yml": pipelineFile("app") }, "first");
    second = await repo.commit({ ".otto.yml": pipelineFile("app, second version") }, "second");
    for (const [name, forge] of [["app", "github"], ["app-gitea", "gitea"], ["app-gitlab", "gitlab"]] as const) {
      const created = await postJson(otto.gatewayUrl, "/otto.v1.ProjectService/CreateProject", {
        name,
        repoUrl: repo.url,
        forge: { kind: forge, apiUrl: "https://forge.invalid/api" },
      });
      assert.equal(created.status, 200, created.text);
      assert.equal(created.json.project.webhookPath, `/hooks/${forge}/${name}`);
      secrets[name] = created.json.webhookSecret;
      assert.match(secrets[name], /^[0-9a-f]{64}$/);
    }
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await repo?.remove();
    await otto?.stopAndClean();
  });

  it("runs a signed push with the pipeline file of that commit, in a checkout of it, the commit in the steps' environment", async () => {
    const run = await started(await post("/hooks/github/app", githubPush({ secret: secrets.app, repository: "acme/app", sha: first })));
    assert.equal(run.state, RunState.SUCCEEDED, `${run.message} ${run.jobs.map((j) => j.message).join("; ")}\n${await logOf(run, "build")}`);
    assert.equal(run.name, "app", "the first commit's pipeline, not the branch tip's");
    assert.deepEqual(
      { project: run.source?.project, number: run.source?.number, event: run.source?.event, ref: run.source?.ref, branch: run.source?.branch, sha: run.source?.sha },
      { project: "app", number: 1n, event: "push", ref: "refs/heads/main", branch: "main", sha: first },
    );
    assert.deepEqual(run.jobs.find((j) => j.name === "build")?.steps.map((s) => s.name), ["checkout", "show"]);
    assert.deepEqual(run.jobs.find((j) => j.name === "bare")?.steps.length, 1, "checkout: false adds no checkout");
    const log = await logOf(run, "build");
    assert.match(log, /project=app number=1 event=push branch=main pr=/);
    assert.match(log, new RegExp(`sha=${first} head=${first}`));
    assert.doesNotMatch(log, /secret=withheld/, "a push from the repository itself gets its secrets (masked in the log)");
    assert.doesNotMatch(log, /hunter2-deploy/);

    const tip = await started(await post("/hooks/github/app", githubPush({ secret: secrets.app, repository: "acme/app", sha: second })));
    assert.equal(tip.state, RunState.SUCCEEDED, tip.message);
    assert.equal(tip.name, "app, second version");
    assert.equal(tip.source?.number, 2n);
  });

  it("runs a push GitHub sent form-encoded, its signature over the body as sent", async () => {
    const created = await postJson(otto.gatewayUrl, "/otto.v1.ProjectService/CreateProject", { name: "app-form", repoUrl: repo.url, forge: { kind: "github" } });
    assert.equal(created.status, 200, created.text);
    const json = githubPush({ secret: created.json.webhookSecret, repository: "acme/app", sha: first });
    const body = `payload=${encodeURIComponent(json.body as string)}`;
    const headers = { ...json.headers, "content-type": "application/x-www-form-urlencoded", "x-hub-signature-256": `sha256=${hmac(created.json.webhookSecret, body)}` };
    const run = await started(await post("/hooks/github/app-form", { headers, body }));
    assert.equal(run.state, RunState.SUCCEEDED, run.message);
    assert.equal(run.source?.sha, first);
    const forged = await post("/hooks/github/app-form", { headers: { ...headers, "x-github-delivery": randomUUID() }, body: body.replace("main", "mair") });
    assert.equal(forged.status, 401, "a body changed after signing is refused");
  });

  it("answers a delivery sent again with its first run, and starts nothing", async () => {
    const delivery = githubPush({ secret: secrets.app, repository: "acme/app", sha: first, delivery: randomUUID() });
    const before = await runsOf("app");
    const answers = await Promise.all([1, 2, 3].map(() => post("/hooks/github/app", delivery)));
    assert.deepEqual(answers.map((a) => a.status), [202, 202, 202]);
    const ids = new Set(answers.map((a) => JSON.parse(a.text).runId));
    assert.equal(ids.size, 1);
    assert.equal(await runsOf("app"), before + 1);
  });

  it("fails a commit whose pipeline file is invalid with the parser's file:line:col problems, and one without the file", async () => {
    const broken = await repo.commit({ ".otto.yml": "name: broken\njobs:\n  build:\n    stpes:\n      - run: true\n" }, "broken", "broken");
    const run = await started(await post("/hooks/github/app", githubPush({ secret: secrets.app, repository: "acme/app", sha: broken, ref: "refs/heads/broken" })));
    assert.equal(run.state, RunState.FAILED);
    assert.match(run.message, /\.otto\.yml:4:5: /);
    assert.equal(run.jobs.length, 0);
    const missing = await repo.commit({ ".otto.yml": null }, "no pipeline", "empty");
    const none = await started(await post("/hooks/github/app", githubPush({ secret: secrets.app, repository: "acme/app", sha: missing, ref: "refs/heads/empty" })));
    assert.equal(none.state, RunState.FAILED);
    assert.match(none.message, /\.otto\.yml does not exist at commit/);
  });

  it("refuses what is unsigned, malformed, oversized or about another repository, and starts nothing", async () => {
    const before = await runsOf("app");
    const good = githubPush({ secret: secrets.app, repository: "acme/app", sha: first });
    const cases: Array<[string, string, { headers: Record<string, string>; body: string | Buffer }, number, RegExp]> = [
      ["no signature", "/hooks/github/app", { ...good, headers: { ...good.headers, "x-hub-signature-256": "" } }, 401, /signature/],
      ["a wrong signature", "/hooks/github/app", { ...good, headers: { ...good.headers, "x-hub-signature-256": `sha256=${hmac("wrong", good.body)}` } }, 401, /signature/],
      ["a signature over another body", "/hooks/github/app", { ...good, body: good.body.replace("main", "mainx") }, 401, /signature/],
      ["no event header", "/hooks/github/app", { ...good, headers: { ...good.headers, "x-github-event": "" } }, 400, /X-GitHub-Event/i],
      [
        "a body that is not JSON",
        "/hooks/github/app",
        { body: "not json", headers: { ...good.headers, "x-hub-signature-256": `sha256=${hmac(secrets.app, "not json")}` } },
        400,
        /JSON/,
      ],
      ["an unknown project", "/hooks/github/nobody", good, 404, /no project is named nobody/],
      ["another forge's path", "/hooks/gitlab/app", good, 404, /\/hooks\/github\/app/],
      ["another repository's event", "/hooks/github/app", githubPush({ secret: secrets.app, repository: "mallory/app", sha: first }), 403, /mallory\/app/],
    ];
    for (const [what, path, delivery, status, message] of cases) {
      const response = await post(path, delivery);
      assert.equal(response.status, status, `${what}: ${response.text}`);
      assert.match(JSON.parse(response.text).error, message, what);
    }
    const huge = Buffer.alloc(25 * 1024 * 1024 + 1, 32);
    const oversized = await post("/hooks/github/app", { headers: good.headers, body: huge });
    assert.equal(oversized.status, 413);
    const get = await request(`${otto.gatewayUrl}/hooks/github/app`, { headers: { authorization: null } });
    assert.equal(get.status, 405);
    assert.equal(await runsOf("app"), before);
  });

  it("reads at most 16 webhook bodies at once, telling the next forge to come back later", async () => {
    const ca = readFileSync(otto.caFile!);
    const target = new URL(`${otto.gatewayUrl}/hooks/github/app`);
    // Sixteen deliveries that send their headers and part of their body, and
    // wait, each on a connection of its own (an idle kept-alive one could be
    // closed under it); one that dies would leave a place free.
    let ended = false;
    const died: string[] = [];
    const slow = Array.from({ length: 16 }, () => {
      const req = https.request(target, { method: "POST", ca, agent: false, headers: { "content-type": "application/json", "content-length": "1000" } });
      req.on("error", (err) => void (ended || died.push(err.message)));
      req.on("response", (res) => void (ended || died.push(`answered ${res.statusCode} early`)));
      req.write("{");
      return req;
    });
    const busy = await waitFor("a delivery turned away", async () => {
      if (died.length > 0) throw new Error(`a slow delivery ended: ${died.join("; ")}`);
      const answer = await post("/hooks/github/app", githubPing(secrets.app));
      return answer.status === 503 ? answer : undefined;
    });
    assert.deepEqual(died, []);
    assert.match(JSON.parse(busy.text).error, /deliver this one again/);
    assert.equal(busy.headers["retry-after"], "5");
    ended = true;
    for (const req of slow) req.destroy();
    await waitFor("webhooks taken again", async () => (await post("/hooks/github/app", githubPing(secrets.app))).status === 200);
  });

  it("ignores a ping, a branch deletion and [skip ci], saying why", async () => {
    const ping = await post("/hooks/github/app", githubPing(secrets.app));
    assert.equal(ping.status, 200, ping.text);
    assert.match(JSON.parse(ping.text).ignored, /ping/);
    const deletion = await post("/hooks/github/app", githubPush({ secret: secrets.app, repository: "acme/app", sha: "0".repeat(40) }));
    assert.equal(deletion.status, 200, deletion.text);
    assert.ok(JSON.parse(deletion.text).ignored);
    const skipped = await post("/hooks/github/app", githubPush({ secret: secrets.app, repository: "acme/app", sha: first, message: "docs only [skip ci]" }));
    assert.equal(skipped.status, 200, skipped.text);
    assert.match(JSON.parse(skipped.text).ignored, /skip ci/);
  });

  it("passes a ref with shell metacharacters to steps as data, never to a shell", async () => {
    const marker = `/tmp/otto-pwned-${randomUUID()}`;
    const ref = `refs/heads/x$(touch ${marker});touch\${IFS}${marker}`;
    const run = await started(await post("/hooks/github/app", githubPush({ secret: secrets.app, repository: "acme/app", sha: first, ref })));
    assert.equal(run.state, RunState.SUCCEEDED, run.message);
    assert.ok((await logOf(run, "build")).includes(`ref=[${ref}]`));
    assert.equal(existsSync(marker), false);
  });

  it("runs a GitLab push checked by its token, and a Gitea push by its signature", async () => {
    const lab = await started(await post("/hooks/gitlab/app-gitlab", gitlabPush({ secret: secrets["app-gitlab"], repository: "acme/app", sha: first })));
    assert.equal(lab.state, RunState.SUCCEEDED, lab.message);
    assert.equal(lab.source?.project, "app-gitlab");
    const wrongToken = await post("/hooks/gitlab/app-gitlab", gitlabPush({ secret: secrets.app, repository: "acme/app", sha: first }));
    assert.equal(wrongToken.status, 401);
    const tea = await started(await post("/hooks/gitea/app-gitea", giteaPush({ secret: secrets["app-gitea"], repository: "acme/app", sha: second })));
    assert.equal(tea.state, RunState.SUCCEEDED, tea.message);
    assert.equal(tea.name, "app, second version");
  });

  it("runs a pull request from a fork without secrets, saying why, until an admin approves its commit; one from the repository with them", async () => {
    const forked = await started(
      await post("/hooks/github/app", githubPullRequest({ secret: secrets.app, repository: "acme/app", headRepository: "mallory/app", sha: first, number: 7 })),
    );
    assert.equal(forked.state, RunState.SUCCEEDED, forked.message);
    assert.equal(forked.source?.event, "pull_request");
    assert.equal(forked.source?.pullRequest?.number, 7n);
    assert.match(forked.source?.secretsWithheld ?? "", /fork mallory\/app/);
    assert.match(await logOf(forked, "build"), /pr=7[\s\S]*secret=withheld/);
    // An admin approves that commit: it runs again, with the secrets, and so
    // does a later delivery of it; another commit of the fork does not.
    const { run: approved } = await otto.client.projects.approveFork({ name: "app", pullRequest: 7n, sha: first });
    const approvedRun = await waitForRun(otto.client, approved!.id);
    assert.equal(approvedRun.source?.secretsWithheld, "");
    assert.doesNotMatch(await logOf(approvedRun, "build"), /secret=withheld/);
    const redelivered = await started(
      await post("/hooks/github/app", githubPullRequest({ secret: secrets.app, repository: "acme/app", headRepository: "mallory/app", sha: first, number: 7, action: "reopened" })),
    );
    assert.equal(redelivered.source?.secretsWithheld, "");
    const pushedAfter = await started(
      await post("/hooks/github/app", githubPullRequest({ secret: secrets.app, repository: "acme/app", headRepository: "mallory/app", sha: second, number: 7, action: "synchronize" })),
    );
    assert.match(pushedAfter.source?.secretsWithheld ?? "", /until an admin approves this commit/);
    await assert.rejects(otto.client.projects.approveFork({ name: "app", pullRequest: 99n, sha: first }), /no run of pull request 99/);
    const own = await started(
      await post("/hooks/github/app", githubPullRequest({ secret: secrets.app, repository: "acme/app", headRepository: "acme/app", sha: second, number: 8, action: "synchronize" })),
    );
    assert.equal(own.source?.secretsWithheld, "");
    assert.doesNotMatch(await logOf(own, "build"), /secret=withheld/);
  });

  it("starts a run of a branch's tip by hand, and answers a new webhook secret once, the old one refused", async () => {
    const { run } = await otto.client.projects.runProject({ name: "app" });
    assert.equal(run?.source?.sha, second);
    assert.equal(run?.source?.event, "manual");
    const final = await waitForRun(otto.client, run!.id);
    assert.equal(final.state, RunState.SUCCEEDED, final.message);
    const { webhookSecret } = await otto.client.projects.rotateWebhookSecret({ name: "app-gitea" });
    const old = await post("/hooks/gitea/app-gitea", giteaPush({ secret: secrets["app-gitea"], repository: "acme/app", sha: second }));
    assert.equal(old.status, 401);
    const fresh = await post("/hooks/gitea/app-gitea", giteaPush({ secret: webhookSecret, repository: "acme/app", sha: second }));
    assert.equal(fresh.status, 202, fresh.text);
  });
});
