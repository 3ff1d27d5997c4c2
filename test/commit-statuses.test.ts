// Commit statuses back to the forge: `pending` when a project's run gets
// its jobs, then `success`, `failure` or `error`, in that order, through
// pg-boss; a forge that refuses is asked again until it takes them, and a
// coordinator killed with -9 in the middle of a delivery leaves it to a peer.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readdir, readFile, readlink } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { waitForRun, RunState } from "@otto/sdk";
import { createTestRepo, type TestRepo } from "./helpers/git-repo.ts";
import { githubPush } from "./helpers/forge-payloads.ts";
import { request, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";

interface Received {
  path: string;
  authorization: string;
  body: { state: string; context: string; description: string; target_url?: string };
  // The forge's answer (0: none, the caller went away first).
  answered: number;
  remotePort: number;
  closed: boolean;
}

// Plays GitHub's status API: records every request; refuses the first
// `refuse` with 500, or holds requests unanswered while `hold` is set.
function startForge() {
  const received: Received[] = [];
  const held: Array<() => void> = [];
  const forge = {
    received,
    refuse: 0,
    hold: false,
    accepted: () => received.filter((r) => r.answered === 201).map((r) => `${r.body.context} ${r.body.state}`),
    release() {
      forge.hold = false;
      for (const answer of held.splice(0)) answer();
    },
    url: "",
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (p: Buffer) => parts.push(p));
    req.on("end", () => {
      const entry: Received = {
        path: req.url ?? "",
        authorization: req.headers.authorization ?? "",
        body: JSON.parse(Buffer.concat(parts).toString("utf8")),
        answered: 0,
        remotePort: req.socket.remotePort ?? 0,
        closed: false,
      };
      req.socket.once("close", () => (entry.closed = true));
      received.push(entry);
      const answer = (status: number) => {
        if (res.destroyed || req.socket.destroyed) return;
        entry.answered = status;
        res.writeHead(status, { "content-type": "application/json" });
        res.end(status === 201 ? JSON.stringify({ id: received.length, state: entry.body.state }) : '{"message":"try later"}');
      };
      if (forge.refuse > 0) {
        forge.refuse--;
        answer(500);
      } else if (forge.hold) {
        held.push(() => answer(201));
      } else {
        answer(201);
      }
    });
  });
  return new Promise<typeof forge>((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      forge.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v3`;
      resolve(forge);
    }),
  );
}

// The coordinator process with a TCP connection from local port `port`.
async function processWithLocalPort(pids: number[], port: number): Promise<number | undefined> {
  const table = (await readFile("/proc/net/tcp", "utf8")) + (await readFile("/proc/net/tcp6", "utf8").catch(() => ""));
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set(
    table
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[1]?.endsWith(`:${hex}`))
      .map((f) => f[9]),
  );
  for (const pid of pids) {
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode)) return pid;
    }
  }
  return undefined;
}

describe("commit statuses", () => {
  let otto: TestOtto;
  let repo: TestRepo;
  let forge: Awaited<ReturnType<typeof startForge>>;
  let secret: string;
  let good: string;
  let broken: string;

  const push = async (sha: string) => {
    const delivery = githubPush({ secret, repository: "acme/app", sha });
    const response = await request(`${otto.gatewayUrl}/hooks/github/app`, { method: "POST", headers: { ...delivery.headers, authorization: null }, body: delivery.body });
    assert.equal(response.status, 202, response.text);
    return waitForRun(otto.client, JSON.parse(response.text).runId);
  };

  before(async () => {
    forge = await startForge();
    otto = await startTestOtto({ coordinators: 2, agents: 1, env: { OTTO_STATUS_RETRY_DELAY_SECONDS: "1" } });
    await otto.client.admin.setSecret({ name: "FORGE_TOKEN", value: "forge-token-1" });
    repo = await createTestRepo(await stepsSharedDir(otto, "repos"));
    good = await repo.commit({ ".otto.yml": "name: app ci\njobs:\n  build:\n    checkout: false\n    steps: [{run: 'true'}]\n" }, "good");
    broken = await repo.commit({ ".otto.yml": "name: app ci\njobs: [oops]\n" }, "broken", "broken");
    const { webhookSecret } = await otto.client.projects.createProject({
      name: "app",
      repoUrl: repo.url,
      forge: { kind: "github", apiUrl: forge.url, tokenSecret: "FORGE_TOKEN" },
    });
    secret = webhookSecret;
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto));
    await repo?.remove();
    await otto?.stopAndClean();
    await forge?.close();
  });

  it("sends pending, then success, to the commit with the token, the run's link and the pipeline's context", async () => {
    const run = await push(good);
    assert.equal(run.state, RunState.SUCCEEDED, run.message);
    await waitFor("both statuses", () => forge.accepted().length >= 2);
    assert.deepEqual(forge.accepted(), ["otto/app ci pending", "otto/app ci success"]);
    const [pending] = forge.received;
    assert.equal(pending.path, `/api/v3/repos/acme/app/statuses/${good}`);
    assert.equal(pending.authorization, "token forge-token-1");
    assert.ok(pending.body.target_url?.includes(run.id), `the run's link: ${pending.body.target_url}`);
    assert.equal(forge.received.length, 2, "nothing sent twice");
  });

  it("sends failure for a commit whose pipeline is invalid", async () => {
    forge.received.length = 0;
    const run = await push(broken);
    assert.equal(run.state, RunState.FAILED);
    await waitFor("the failure status", () => forge.accepted().length >= 1);
    assert.deepEqual(forge.accepted(), ["otto/app failure"]);
    assert.equal(forge.received[0].path, `/api/v3/repos/acme/app/statuses/${broken}`);
    assert.match(forge.received[0].body.description, /not a valid pipeline/);
  });

  it("asks a forge that refuses again until it takes each status, in order", async () => {
    forge.received.length = 0;
    forge.refuse = 3;
    const run = await push(good);
    assert.equal(run.state, RunState.SUCCEEDED);
    await waitFor("both statuses after the refusals", () => forge.accepted().length >= 2, 60_000);
    assert.deepEqual(forge.accepted(), ["otto/app ci pending", "otto/app ci success"]);
    assert.equal(forge.received.filter((r) => r.answered === 500).length, 3);
    const states = forge.received.map((r) => r.body.state);
    assert.equal(states.lastIndexOf("pending") < states.indexOf("success"), true, `never success before pending: ${states.join(", ")}`);
  });

  it("leaves a delivery cut off by a coordinator killed with -9 to its peer: each status is taken once, in order", async () => {
    forge.received.length = 0;
    forge.hold = true;
    const run = await push(good);
    assert.equal(run.state, RunState.SUCCEEDED);
    const heldRequest = await waitFor("the pending status held at the forge", () => forge.received.find((r) => r.answered === 0));
    const coordinators = ["coordinator-1", "coordinator-2"].map((name) => otto.supervisor.pid(name)).filter((pid): pid is number => pid !== undefined);
    const holder = await processWithLocalPort(coordinators, heldRequest.remotePort);
    assert.ok(holder, "the coordinator delivering the status");
    process.kill(holder, "SIGKILL");
    await waitFor("the killed coordinator's connection to close", () => heldRequest.closed);
    forge.release();
    await waitFor("both statuses after the kill", () => forge.accepted().length >= 2, 60_000);
    assert.deepEqual(forge.accepted(), ["otto/app ci pending", "otto/app ci success"]);
    assert.equal(heldRequest.answered, 0, "the killed coordinator's request was never answered");
  });
});
