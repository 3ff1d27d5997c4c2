// Streams served to a token's holder end with unauthenticated once the
// token is revoked or expires; those of other tokens go on.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import https from "node:https";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState, pipeline } from "@otto/sdk";
import { createOttoClient, type OttoClient } from "@otto/sdk";
import { startTestOtto, waitFor, type TestOtto } from "./helpers/otto.ts";

interface Followed {
  received: number;
  text: string;
  ended?: { error?: ConnectError };
}

// Reads a stream to its end in the background.
function follow<T>(stream: AsyncIterable<T>, onMessage: (message: T, into: Followed) => void = () => {}): Followed {
  const into: Followed = { received: 0, text: "" };
  void (async () => {
    try {
      for await (const message of stream) {
        into.received++;
        onMessage(message, into);
      }
      into.ended = {};
    } catch (err) {
      into.ended = { error: ConnectError.from(err) };
    }
  })();
  return into;
}

const ended = (stream: Followed) => stream.ended;

describe("streams end when their token dies", () => {
  let otto: TestOtto;
  const clientWith = async (ttlSeconds = 0) => {
    const { token, info } = await otto.client.admin.createToken({ name: "watcher", scopes: ["runs:read"], ttlSeconds });
    const client = createOttoClient({ baseUrl: otto.gatewayUrl, token, caFile: otto.caFile });
    return { client, token, id: info!.id };
  };
  const heldRun = async (name: string) => {
    const gate = join(otto.stepsDir, `${name}.gate`);
    const ir = pipeline(name)
      .job("held", { steps: ["echo started", `while [ ! -f ${gate} ]; do sleep 0.05; done`, "echo released"] })
      .build();
    const { run } = await otto.client.runs.submitRun({ source: { case: "pipeline", value: ir } });
    return { runId: run!.id, release: () => writeFile(gate, "") };
  };
  const watch = (client: OttoClient, runId: string) => follow(client.runs.watchRun({ runId }, { timeoutMs: 0 }));
  const readLog = (client: OttoClient, runId: string) =>
    follow(client.logs.readLog({ runId, job: "held", follow: true }, { timeoutMs: 0 }), (chunk, into) => (into.text += chunk.text));
  // The plain-JSON form, as curl would follow a run: one JSON message per line.
  const watchAsCurl = (token: string, runId: string) => {
    const lines: any[] = [];
    const state = { lines, ended: false };
    void new Promise<void>((resolve, reject) => {
      const req = https.request(new URL("/otto.v1.RunService/WatchRun", otto.gatewayUrl), {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        ca: readFileSync(otto.caFile!),
      });
      req.on("response", (res) => {
        let rest = "";
        res.on("data", (part: Buffer) => {
          const text = rest + part.toString("utf8");
          const complete = text.split("\n");
          rest = complete.pop()!;
          for (const line of complete) if (line.trim()) lines.push(JSON.parse(line));
        });
        res.on("end", () => {
          state.ended = true;
          resolve();
        });
      });
      req.on("error", reject);
      req.end(JSON.stringify({ runId }));
    });
    return state;
  };

  before(async () => {
    otto = await startTestOtto({ agents: 1 });
  });

  after(async () => {
    await otto?.stopAndClean();
  });

  it("ends WatchRun and a followed ReadLog with unauthenticated when their token is revoked, and no other", async () => {
    const revoked = await clientWith();
    const kept = await clientWith();
    const { runId, release } = await heldRun("revoked");
    const streams = {
      revokedWatch: watch(revoked.client, runId),
      revokedLog: readLog(revoked.client, runId),
      keptWatch: watch(kept.client, runId),
      keptLog: readLog(kept.client, runId),
    };
    const curl = watchAsCurl(revoked.token, runId);
    await waitFor("both logs streaming", () => streams.revokedLog.text.includes("started") && streams.keptLog.text.includes("started"));
    await waitFor("the plain-JSON stream streaming", () => curl.lines.length > 0);

    await otto.client.admin.revokeToken({ id: revoked.id });
    for (const name of ["revokedWatch", "revokedLog"] as const) {
      const end = await waitFor(`${name} to end`, () => ended(streams[name]));
      assert.equal(end.error?.code, Code.Unauthenticated, `${name}: ${end.error?.message}`);
    }
    await waitFor("the plain-JSON stream to end", () => curl.ended);
    assert.equal(curl.lines.at(-1).error?.code, "unauthenticated");

    // The other token's streams go on to the run's end.
    assert.equal(streams.keptWatch.ended, undefined);
    assert.equal(streams.keptLog.ended, undefined);
    const watchedBefore = streams.keptWatch.received;
    await release();
    const keptWatchEnd = await waitFor("the kept WatchRun to end", () => ended(streams.keptWatch));
    const keptLogEnd = await waitFor("the kept ReadLog to end", () => ended(streams.keptLog));
    assert.equal(keptWatchEnd.error?.message, undefined);
    assert.equal(keptLogEnd.error?.message, undefined);
    assert.ok(streams.keptWatch.received > watchedBefore, "the kept WatchRun saw the run go on");
    assert.match(streams.keptLog.text, /released/);
    const { run } = await otto.client.runs.getRun({ runId });
    assert.equal(run!.state, RunState.SUCCEEDED);
  });

  it("ends them when their token expires", async () => {
    const expiring = await clientWith(8);
    const { runId, release } = await heldRun("expiring");
    const streams = { watch: watch(expiring.client, runId), log: readLog(expiring.client, runId) };
    await waitFor("the log streaming", () => streams.log.text.includes("started"));
    for (const name of ["watch", "log"] as const) {
      const end = await waitFor(`${name} to end`, () => ended(streams[name]));
      assert.equal(end.error?.code, Code.Unauthenticated, `${name}: ${end.error?.message}`);
      assert.ok(streams[name].received > 0, `${name} streamed before the token expired`);
    }
    await release();
  });
});
