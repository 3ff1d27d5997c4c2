// A project whose repository is private, over HTTPS: the pipeline file is
// read, and every job that checks out fetches the commit, with the forge's
// token (the secret that also sends its commit statuses) as HTTP Basic,
// against git's own smart HTTP server. The token is in no log and no
// repository's config; a public repository's jobs never get it; without it
// a private one's run fails at once, saying why.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { chmod, copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureLocalCa } from "@otto/kit/local-ca";
import { readLogLines, waitForRun, RunState, type Run } from "@otto/sdk";
import { createTestRepo, type TestRepo } from "./helpers/git-repo.ts";
import { githubPush, gitlabPush } from "./helpers/forge-payloads.ts";
import { startGitHttpsServer, type GitHttpsServer } from "./helpers/git-https-server.ts";
import { postJson, request, startTestOtto, stepsSharedDir, tailOfLog, type TestOtto } from "./helpers/otto.ts";

const token = "forge-token-0f1e2d3c4b5a69788796a5b4";

describe("a private repository over HTTPS", () => {
  let otto: TestOtto;
  let tlsDir: string;
  let repo: TestRepo;
  let publicRepo: TestRepo;
  let publicSha: string;
  let forge: GitHttpsServer;
  let gitlab: GitHttpsServer;
  let sha: string;
  const secrets: Record<string, string> = {};
  const basic = (user: string) => `Basic ${Buffer.from(`${user}:${token}`).toString("base64")}`;
  // Each read or fetch of a private repository asks without credentials
  // first, and again with the token once refused.
  const signedIn = (server: GitHttpsServer, user: string, from = 0) => {
    const seen = server.gitRequests.slice(from).filter((r) => !r.path.startsWith("/public/"));
    assert.ok(seen.length > 0);
    assert.deepEqual(new Set(seen.map((r) => r.authorization ?? "none")), new Set(["none", basic(user)]));
    return seen.filter((r) => r.authorization).length;
  };

  const logOf = async (run: Run, job: string) => {
    const lines: string[] = [];
    for await (const line of readLogLines(otto.client, run.id, job)) lines.push(line.text);
    return lines.join("\n");
  };
  const push = async (project: string, delivery: { headers: Record<string, string>; body: string | Buffer }, hook = "github") => {
    const answer = await request(`${otto.gatewayUrl}/hooks/${hook}/${project}`, { method: "POST", headers: { ...delivery.headers, authorization: null }, body: delivery.body });
    assert.equal(answer.status, 202, answer.text);
    return waitForRun(otto.client, JSON.parse(answer.text).runId);
  };
  const createProject = async (name: string, server: GitHttpsServer, kind: string, tokenSecret: string) => {
    const created = await postJson(otto.gatewayUrl, "/otto.v1.ProjectService/CreateProject", {
      name,
      repoUrl: `${server.url}/acme/app.git`,
      forge: { kind, apiUrl: `${server.url}/api`, tokenSecret, repository: "acme/app" },
    });
    assert.equal(created.status, 200, created.text);
    secrets[name] = created.json.webhookSecret;
  };
  const explain = async (run: Run) => `${run.message} ${run.jobs.map((j) => j.message).join("; ")}\n${run.jobs.length ? await logOf(run, "build") : ""}`;

  before(async () => {
    // The forge's CA, which the coordinators' git trusts (GIT_SSL_CAINFO,
    // which they pass through), as an operator with a private CA would.
    tlsDir = await mkdtemp(join(tmpdir(), "otto-forge-tls-"));
    await ensureLocalCa(tlsDir);
    otto = await startTestOtto({ agents: 1, env: { GIT_SSL_CAINFO: join(tlsDir, "ca.pem") } });
    const shared = await stepsSharedDir(otto, "private");
    repo = await createTestRepo(shared);
    publicRepo = await createTestRepo(shared, "public", "app");
    forge = await startGitHttpsServer(shared, tlsDir, "x-access-token", token);
    gitlab = await startGitHttpsServer(shared, tlsDir, "oauth2", token);
    // The steps' git trusts it through the job's environment.
    const caForSteps = join(shared, "forge-ca.pem");
    await copyFile(forge.caFile, caForSteps);
    await chmod(caForSteps, 0o644);
    sha = await repo.commit(
      {
        "README.md": "private\n",
        ".otto.yml": `name: private
jobs:
  build:
    env: { GIT_SSL_CAINFO: ${caForSteps} }
    steps:
      - run: |
          test -f README.md
          test "$(git rev-parse HEAD)" = "$OTTO_SHA"
          test -z "$(git config --get-regexp 'http\\..*' || true)"
          ! grep -rqsF "${token}" .git
          echo "the token reads as [$FORGE_TOKEN$GITLAB_TOKEN]"
  bare:
    checkout: false
    steps:
      - run: 'test -z "$FORGE_TOKEN$GITLAB_TOKEN"'
  grow:
    checkout: false
    steps:
      - run: |
          cat > more.yml <<'EOF'
          jobs:
            added:
              env: { GIT_SSL_CAINFO: ${caForSteps} }
              steps:
                - run: test -f README.md
          EOF
          otto jobs add more.yml
`,
      },
      "private commit",
    );
    publicSha = await publicRepo.commit({
      ".otto.yml": `name: public
jobs:
  build:
    env: { GIT_SSL_CAINFO: ${caForSteps} }
    steps:
      - run: 'test -z "$FORGE_TOKEN" && git rev-parse HEAD'
`,
    });
    await otto.client.admin.setSecret({ name: "FORGE_TOKEN", value: token });
    await otto.client.admin.setSecret({ name: "GITLAB_TOKEN", value: token });
    await createProject("private", forge, "github", "FORGE_TOKEN");
    await createProject("private-gitlab", gitlab, "gitlab", "GITLAB_TOKEN");
    await createProject("private-no-token", forge, "github", "UNSET_TOKEN");
    const created = await postJson(otto.gatewayUrl, "/otto.v1.ProjectService/CreateProject", {
      name: "public",
      repoUrl: `${forge.url}/public/app.git`,
      forge: { kind: "github", apiUrl: `${forge.url}/api`, tokenSecret: "FORGE_TOKEN", repository: "public/app" },
    });
    assert.equal(created.status, 200, created.text);
    secrets.public = created.json.webhookSecret;
  });
  after(async () => {
    if (otto && process.exitCode) console.log(await tailOfLog(otto));
    await forge?.close();
    await gitlab?.close();
    await repo?.remove();
    await publicRepo?.remove();
    await otto?.stopAndClean();
    if (tlsDir) await rm(tlsDir, { recursive: true, force: true });
  });

  it("reads the pipeline and checks out with the forge's token, kept in no log, repository or job that does not check out", async () => {
    const run = await push("private", githubPush({ secret: secrets.private, repository: "acme/app", sha }));
    assert.equal(run.state, RunState.SUCCEEDED, await explain(run));
    assert.ok(signedIn(forge, "x-access-token") >= 3, "the coordinator's read, the job's checkout and the added job's");
    assert.equal(run.jobs.find((job) => job.name === "added")?.state, RunState.SUCCEEDED, "a job a step added checks out with the token too");
    const log = await logOf(run, "build");
    assert.match(log, /the token reads as \[\*+\]/, "the token is one of the checkout job's secrets, masked");
    assert.ok(!log.includes(token));
  });

  it("signs in to GitLab as oauth2", async () => {
    const run = await push("private-gitlab", gitlabPush({ secret: secrets["private-gitlab"], repository: "acme/app", sha }), "gitlab");
    assert.equal(run.state, RunState.SUCCEEDED, await explain(run));
    assert.ok(signedIn(gitlab, "oauth2") >= 2);
  });

  it("fails at once a run whose token secret is not set, and reads nothing another project's token fetched", async () => {
    const before = forge.gitRequests.length;
    const run = await push("private-no-token", githubPush({ secret: secrets["private-no-token"], repository: "acme/app", sha }));
    assert.equal(run.state, RunState.FAILED);
    assert.match(run.message, /^no pipeline to run: repository https:\/\/127\.0\.0\.1:\d+\/acme\/app\.git refused access: a private repository is read with its project's forge token \(forge\.tokenSecret, a secret that is set, with read access to the repository\): /);
    const asked = forge.gitRequests.slice(before);
    assert.ok(asked.length > 0 && asked.every((r) => r.authorization === undefined), "asked without credentials, and refused");
  });

  it("reads and checks out a public repository without the token, which its jobs never get", async () => {
    const before = forge.gitRequests.length;
    const run = await push("public", githubPush({ secret: secrets.public, repository: "public/app", sha: publicSha }));
    assert.equal(run.state, RunState.SUCCEEDED, await explain(run));
    const asked = forge.gitRequests.slice(before);
    assert.ok(asked.length >= 2 && asked.every((r) => r.path.startsWith("/public/") && r.authorization === undefined));
  });
});
