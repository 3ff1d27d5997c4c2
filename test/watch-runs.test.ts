// The API a web page and integrations use: every run's events as one
// resumable stream (WatchRuns), who a token is (WhoAmI), the live agents
// (ListAgents), cctray.xml and badges; through a real gateway and two
// coordinators, one of which is killed with -9 under a stream.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import https from "node:https";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { Code, ConnectError } from "@connectrpc/connect";
import { createOttoClient, RunState, submit, waitForRun, watchRuns, TokenKind, type RunsStreamEvent } from "@otto/sdk";
import { postJson, request, startTestOtto, stepsSharedDir, tailOfLog, waitFor, type TestOtto } from "./helpers/otto.ts";
import { runCli } from "./helpers/cli.ts";
import { repoRoot } from "@otto/launcher/system";

const coordinatorNames = ["coordinator-1", "coordinator-2"];
const markup = `<b>"x" & 'y'</b>`;

describe("WatchRuns, WhoAmI, ListAgents, cctray.xml and badges", () => {
  let otto: TestOtto;
  let gate: string;
  before(async () => {
    otto = await startTestOtto({ coordinators: 2, agents: 1, agentSlots: 2, agentLabels: ["linux"] });
    gate = await stepsSharedDir(otto, "watch-runs");
  });
  after(async () => {
    if (process.exitCode) console.log(await tailOfLog(otto, 150));
    await otto?.stopAndClean();
  });

  const pipelineYaml = (name: string, step = "true") => `name: '${name.replace(/'/g, "''")}'\njobs:\n  build:\n    steps: [{run: '${step}'}]\n  test:\n    needs: [build]\n    steps: [{run: 'true'}]\n`;
  const key = (e: RunsStreamEvent) => `${e.event.runId}#${e.event.seq}`;
  const finals: RunState[] = [RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELED];
  const isRunEnd = (e: RunsStreamEvent) => e.event.job === "" && finals.includes(e.event.state);

  // Collects a stream's events until `done` says so.
  function collect(stream: AsyncGenerator<RunsStreamEvent>, done: (events: RunsStreamEvent[]) => boolean) {
    const events: RunsStreamEvent[] = [];
    const finished = (async () => {
      for await (const e of stream) {
        events.push(e);
        if (done(events)) return events;
      }
      return events;
    })();
    return { events, finished };
  }
  const endedAll = (runIds: string[]) => (events: RunsStreamEvent[]) => runIds.every((id) => events.some((e) => e.event.runId === id && isRunEnd(e)));

  // The whole journal of a run, by WatchRun.
  async function journalOf(runId: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const m of otto.client.runs.watchRun({ runId })) if (m.event) keys.push(`${runId}#${m.event.seq}`);
    return keys;
  }

  it("streams the events of several runs with their run, filters them, and a cursor resumes with nothing lost or repeated", async () => {
    const cursors: string[] = [];
    const stop2 = new AbortController();
    const everything = collect(
      watchRuns(otto.client, { signal: stop2.signal, onCursor: (c) => cursors.push(c) }),
      () => false,
    );
    const started = new Set<string>();
    const alphaStream = collect(watchRuns(otto.client, { signal: stop2.signal, filter: { pipeline: "alpha" }, onCursor: () => started.add("alpha") }), () => false);
    const succeeded = collect(watchRuns(otto.client, { signal: stop2.signal, filter: { state: RunState.SUCCEEDED }, onCursor: () => started.add("succeeded") }), () => false);
    // A stream starts from now once its first message (a cursor) came.
    await waitFor("the first cursors", () => cursors.length > 0 && started.size === 2);

    const alpha = await submit(otto.client, pipelineYaml("alpha"));
    const beta = await submit(otto.client, pipelineYaml("beta"));
    const failing = await submit(otto.client, pipelineYaml("alpha", "exit 3"));
    for (const run of [alpha, beta, failing]) await waitForRun(otto.client, run.id);
    const ids = [alpha.id, beta.id, failing.id];
    await waitFor("every run's end in the stream", () => endedAll(ids)(everything.events));
    await waitFor("alpha's ends in its stream", () => endedAll([alpha.id, failing.id])(alphaStream.events));
    await waitFor("the successes' ends", () => endedAll([alpha.id, beta.id])(succeeded.events));
    stop2.abort();
    await Promise.allSettled([everything.finished, alphaStream.finished, succeeded.finished]);

    // Every entry of each run, once, in each run's order.
    const ours = everything.events.filter((e) => ids.includes(e.event.runId));
    assert.deepEqual(new Set(ours.map(key)).size, ours.length, "no event twice");
    for (const id of ids) assert.deepEqual(ours.filter((e) => e.event.runId === id).map(key), await journalOf(id));
    const first = ours.find((e) => e.event.runId === alpha.id)!;
    assert.equal(first.run.name, "alpha");
    assert.equal(first.run.id, alpha.id);
    assert.equal(ours.find((e) => e.event.runId === failing.id && isRunEnd(e))!.run.state, RunState.FAILED);

    assert.ok(alphaStream.events.length > 0);
    assert.ok(alphaStream.events.every((e) => e.run.name === "alpha"));
    assert.deepEqual(alphaStream.events.map(key), ours.filter((e) => e.run.name === "alpha").map(key));
    assert.ok(succeeded.events.every((e) => e.run.state === RunState.SUCCEEDED));
    assert.deepEqual(succeeded.events.filter((e) => ids.includes(e.event.runId)).map(key), ours.filter((e) => e.run.state === RunState.SUCCEEDED).map(key));

    // From the middle of the stream: exactly the rest.
    const middle = Math.floor(ours.length / 2);
    const stop3 = new AbortController();
    const resumed = collect(watchRuns(otto.client, { signal: stop3.signal, afterCursor: ours[middle].cursor }), endedAll(ids));
    await resumed.finished;
    stop3.abort();
    assert.deepEqual(resumed.events.filter((e) => ids.includes(e.event.runId)).map(key), ours.slice(middle + 1).map(key));
  });

  it("is curl-able: a plain JSON body gets one JSON message per line, the first with the cursor it starts from", async () => {
    const lines: any[] = [];
    const stop = new AbortController();
    const url = new URL("/otto.v1.RunService/WatchRuns", otto.gatewayUrl);
    const ended = new Promise<void>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method: "POST",
          ca: readFileSync(otto.caFile!),
          headers: { "content-type": "application/json", authorization: `Bearer ${otto.adminToken}` },
          signal: stop.signal,
        },
        (res) => {
          assert.equal(res.statusCode, 200);
          let buffered = "";
          res.setEncoding("utf8").on("data", (text: string) => {
            buffered += text;
            for (let at = buffered.indexOf("\n"); at >= 0; at = buffered.indexOf("\n")) {
              lines.push(JSON.parse(buffered.slice(0, at)));
              buffered = buffered.slice(at + 1);
            }
          });
          res.on("close", resolve);
        },
      );
      req.on("error", (err) => (stop.signal.aborted ? resolve() : reject(err)));
      req.end(JSON.stringify({ filter: { pipeline: "curl" } }));
    });
    await waitFor("the first line", () => lines.length > 0);
    assert.equal(typeof lines[0].cursor, "string");
    assert.equal(lines[0].event, undefined);
    const run = await submit(otto.client, pipelineYaml("curl"));
    await waitFor("the run's end as a line", () => lines.some((l) => l.event?.runId === run.id && !l.event.job && l.event.state === "RUN_STATE_SUCCEEDED"));
    stop.abort();
    await ended;
    const events = lines.filter((l) => l.event);
    assert.ok(events.every((l) => l.run.name === "curl" && l.event.runId === run.id && typeof l.cursor === "string"));
    assert.deepEqual(events.map((l) => Number(l.event.seq)), events.map((_, i) => i + 1));
  });

  it("otto events prints one line per event of the runs it is filtered to", async () => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "sdk/src/cli.ts", "events", "--pipeline", "cli-events", "--from-beginning", "--cursors"], {
      cwd: repoRoot,
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
      child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
      // From the beginning: no race with the stream's start.
      const run = await submit(otto.client, pipelineYaml("cli-events"));
      await waitFor("the run's end", () => new RegExp(`${run.id}  cli-events  run SUCCEEDED: all jobs succeeded  \\S+\n`).test(stdout)).catch((err) => {
        throw new Error(`${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`);
      });
      const lines = stdout.split("\n").filter((line) => line.includes(run.id));
      assert.ok(lines.some((line) => /  build\/true SUCCEEDED exit 0  /.test(line)), stdout);
      assert.ok(lines.every((line) => /^\d{4}-\d\d-\d\dT[\d:.]+Z  /.test(line)));
    } finally {
      child.kill();
    }
  });

  it("goes on from a peer with nothing lost or repeated while each coordinator in turn is killed with -9", async () => {
    const killed: number[] = [];
    const killACoordinator = async (turn: number) => {
      await waitFor("both coordinators up and registered", () =>
        otto.supervisor.info().filter((c) => coordinatorNames.includes(c.name) && c.pid !== undefined && !killed.includes(c.pid) && c.url).length === 2,
      );
      const pid = otto.supervisor.pid(coordinatorNames[turn % 2])!;
      killed.push(pid);
      process.kill(pid, "SIGKILL");
    };
    const stop = new AbortController();
    const cursors: string[] = [];
    const stream = collect(watchRuns(otto.client, { signal: stop.signal, onCursor: (c) => cursors.push(c) }), () => false);
    await waitFor("the first cursor", () => cursors.length > 0);
    const ids: string[] = [];
    // Both coordinators die, one after the other, while runs go on: the one
    // serving the stream is among them.
    for (let turn = 0; turn < 2; turn++) {
      for (let i = 0; i < 3; i++) ids.push((await submit(otto.client, pipelineYaml(`chaos-${turn}`))).id);
      await killACoordinator(turn);
      for (let i = 0; i < 2; i++) ids.push((await submit(otto.client, pipelineYaml(`chaos-${turn}`))).id);
    }
    for (const id of ids) await waitForRun(otto.client, id);
    await waitFor("every run's end in the stream", () => endedAll(ids)(stream.events), 60_000);
    stop.abort();
    await stream.finished.catch(() => {});
    const ours = stream.events.filter((e) => ids.includes(e.event.runId));
    assert.equal(new Set(ours.map(key)).size, ours.length, "no event twice");
    for (const id of ids) assert.deepEqual(ours.filter((e) => e.event.runId === id).map(key), await journalOf(id), `run ${id}: every event, in order`);
  });

  it("WhoAmI answers each token's name, id, kind and scopes", async () => {
    for (const scope of ["runs:read", "runs:write", "agents:read", "admin"]) {
      const { token, info } = await otto.client.admin.createToken({ name: `who ${scope}`, scopes: [scope] });
      const client = createOttoClient({ baseUrl: otto.gatewayUrl, token, caFile: otto.caFile });
      const { token: me } = await client.account.whoAmI({});
      assert.deepEqual([me!.id, me!.name, me!.kind, me!.scopes], [info!.id, `who ${scope}`, TokenKind.API, [scope]]);
      const raw = await postJson(otto.gatewayUrl, "/otto.v1.AccountService/WhoAmI", {}, { authorization: `Bearer ${token}` });
      assert.equal(raw.status, 200, raw.text);
      assert.deepEqual(raw.json.token.scopes, [scope]);
    }
    const none = await postJson(otto.gatewayUrl, "/otto.v1.AccountService/WhoAmI", {}, { authorization: null });
    assert.equal(none.status, 401);
    const cli = await runCli(["whoami"], { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /api .*admin/);
  });

  it("ListAgents lists the live agent with its labels and busy and free slots, for agents:read and admin tokens only", async () => {
    await rm(join(gate, "open"), { force: true });
    const blocked = await submit(otto.client, `name: hold\njobs:\n  hold:\n    steps: [{run: 'while [ ! -f ${gate}/open ]; do sleep 0.05; done'}]\n`);
    const agent = await waitFor("the agent busy with one job", async () => {
      const { agents } = await otto.client.admin.listAgents({});
      const found = agents.find((a) => a.jobs.some((j) => j.runId === blocked.id));
      return found;
    });
    assert.deepEqual([agent.labels.includes("linux"), agent.slots, agent.busySlots, agent.freeSlots], [true, 2, 1, 1]);
    assert.deepEqual(agent.jobs.map((j) => [j.runId, j.job, j.attempt]), [[blocked.id, "hold", 1]]);
    const cli = await runCli(["agents"], { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! });
    assert.match(cli.stdout, new RegExp(`${agent.id}  1/2 busy  \\[.*linux.*\\]  ${blocked.id}/hold#1`));
    await writeFile(join(gate, "open"), "");
    await waitForRun(otto.client, blocked.id);

    const { token } = await otto.client.admin.createToken({ name: "reader", scopes: ["runs:write"] });
    const reader = createOttoClient({ baseUrl: otto.gatewayUrl, token, caFile: otto.caFile });
    await assert.rejects(reader.admin.listAgents({}), (err) => err instanceof ConnectError && err.code === Code.PermissionDenied);

    // A wall display's token: the agents, and nothing of the runs.
    const asAdmin = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN_FILE: otto.adminTokenFile! };
    const created = await runCli(["token", "create", "wall", "--scope", "agents:read"], asAdmin);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stderr, /\(agents:read\) made/);
    const asWall = { OTTO_URL: otto.gatewayUrl, OTTO_CA_FILE: otto.caFile!, OTTO_TOKEN: created.stdout.trim() };
    const listed = await runCli(["agents"], asWall);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${agent.id}  \\d/2 busy`, "m"));
    const runs = await runCli(["runs"], asWall);
    assert.notEqual(runs.code, 0);
    assert.match(runs.stderr, /needs the scope runs:read \[PermissionDenied\]/);
  });

  it("cctray.xml has a Project per pipeline with every attribute, asks for credentials with WWW-Authenticate, takes Basic, and escapes names", async () => {
    const ok = await submit(otto.client, pipelineYaml(markup));
    const bad = await submit(otto.client, pipelineYaml("broken", "exit 1"));
    for (const run of [ok, bad]) await waitForRun(otto.client, run.id);

    const anonymous = await request(`${otto.gatewayUrl}/cctray.xml`, { headers: { authorization: null } });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers["www-authenticate"], 'Basic realm="Otto"');
    const wrong = await request(`${otto.gatewayUrl}/cctray.xml`, { headers: { authorization: `Basic ${Buffer.from("me:otto_api_nope").toString("base64")}` } });
    assert.equal(wrong.status, 401);

    const { token } = await otto.client.admin.createToken({ name: "monitor", scopes: ["runs:read"] });
    const basic = await request(`${otto.gatewayUrl}/cctray.xml`, { headers: { authorization: `Basic ${Buffer.from(`anyone:${token}`).toString("base64")}` } });
    assert.equal(basic.status, 200, basic.text);
    assert.match(String(basic.headers["content-type"]), /xml/);
    assert.equal(XMLValidator.validate(basic.text), true);
    const projects = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "", isArray: (n) => n === "Project" }).parse(basic.text).Projects.Project as Record<string, string>[];
    const byName = new Map(projects.map((p) => [p.name, p]));
    for (const p of projects) {
      for (const attribute of ["name", "activity", "lastBuildStatus", "lastBuildLabel", "lastBuildTime", "webUrl"]) assert.ok(attribute in p, `${p.name} has ${attribute}`);
      assert.ok(["Sleeping", "Building"].includes(p.activity));
      assert.ok(["Success", "Failure", "Exception", "Unknown"].includes(p.lastBuildStatus));
      assert.match(p.lastBuildTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/);
    }
    assert.deepEqual(
      [byName.get(markup)?.lastBuildStatus, byName.get(markup)?.activity, byName.get(markup)?.lastBuildLabel, byName.get(markup)?.webUrl],
      ["Success", "Sleeping", ok.id, `${otto.gatewayUrl}/runs/${ok.id}`],
    );
    assert.equal(byName.get("broken")?.lastBuildStatus, "Failure");
    assert.ok(!basic.text.includes("<b>"), "markup in a name is escaped");

    const bearer = await request(`${otto.gatewayUrl}/cctray.xml`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(bearer.status, 200);
  });

  it("a badge is an SVG naming the pipeline's state", async () => {
    const badge = await request(`${otto.gatewayUrl}/badges/${encodeURIComponent(markup)}.svg`);
    assert.equal(badge.status, 200, badge.text);
    assert.match(String(badge.headers["content-type"]), /^image\/svg\+xml/);
    assert.equal(XMLValidator.validate(badge.text), true);
    const svg = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(badge.text).svg;
    assert.equal(svg.xmlns, "http://www.w3.org/2000/svg");
    assert.equal(svg.title, `${markup}: passing`);
    const broken = await request(`${otto.gatewayUrl}/badges/broken.svg`);
    assert.match(broken.text, /<title>broken: failing<\/title>/);
    assert.equal((await request(`${otto.gatewayUrl}/badges/nothing-here.svg`)).status, 404);
    assert.equal((await request(`${otto.gatewayUrl}/badges/broken.svg`, { headers: { authorization: null } })).status, 401);
  });
});
