// Ctrl-C in a terminal signals the launcher's whole process group. The
// embedded Postgres must not be in it: it is stopped by the launcher, after
// every service has drained, so no service loses its database mid-drain.
import { after, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { isAlive, postJson, trust, waitFor } from "./helpers/otto.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dirs: string[] = [];
const groups: number[] = [];
// Postgres has a group of its own: if the test fails before it stops, this
// one is killed by pid, once it is sure the pid is still that Postgres.
const postgresPids: number[] = [];

after(async () => {
  for (const group of groups) kill(-group);
  for (const pid of postgresPids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (dirs.some((dir) => cmdline.includes(dir))) kill(pid);
  }
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

// What a database client logs when Postgres goes away under it.
const lostDatabase = /ENOENT|ECONNREFUSED|57P01|terminating connection due to administrator command|Connection terminated unexpectedly|the database system is shutting down/;

it("Ctrl-C to the launcher's process group: the services drain first, Postgres stops last, and nothing logs a lost database", { timeout: 300_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "otto-ctrl-c-"));
  dirs.push(dataDir);
  await chmod(dataDir, 0o755);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OTTO_") && k !== "DATABASE_URL" && !k.startsWith("NODE_TEST")));
  // Its own process group, as a shell gives a foreground job.
  const launcher = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "services/launcher/src/main.ts", "--data-dir", dataDir, "--port", "0"], {
    cwd: repoRoot,
    env: { ...env, OTTO_AGENT_ON_STOP: "hand-back" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  groups.push(launcher.pid!);
  let output = "";
  launcher.stdout!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  launcher.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => launcher.on("close", (code, signal) => done({ code, signal })));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const tail = () => output.split("\n").slice(-30).join("\n");

  const gatewayUrl = await waitFor(
    "the launcher to announce its gateway",
    () => {
      if (hasExited) throw new Error(`the launcher exited early\n${tail()}`);
      return output.match(/^Otto gateway: (https:\/\/\S+)$/m)?.[1];
    },
    180_000,
  );
  const listed = JSON.parse(await readFile(join(dataDir, "processes.json"), "utf8")) as { processes: Array<{ name: string; pid: number; url?: string }> };
  const postgres = listed.processes.find((p) => p.name === "postgres")!;
  postgresPids.push(postgres.pid);
  const services = listed.processes.filter((p) => p.name !== "postgres");
  assert.ok(services.length >= 7, JSON.stringify(listed));
  assert.notEqual(await processGroupOf(postgres.pid), launcher.pid, "Postgres has a process group of its own");

  // A job is running when Ctrl-C comes, so the agent hands it back and the
  // coordinator records that in the database while it drains.
  trust(join(dataDir, "tls", "ca.pem"), gatewayUrl, (await readFile(join(dataDir, "admin.token"), "utf8")).trim());
  const submitted = await postJson(gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: "name: long\njobs:\n  wait:\n    steps:\n      - run: sleep 600\n" });
  assert.equal(submitted.status, 200, submitted.text);
  const runId: string = submitted.json.run.id;
  await waitFor("the job to be running", async () => (await postJson(gatewayUrl, "/otto.v1.RunService/GetRun", { runId })).json?.run?.state === "RUN_STATE_RUNNING", 60_000);

  // A session of our own notices the moment Postgres shuts down; at that
  // moment every service must already have exited.
  const url = new URL(postgres.url!);
  url.password = (await readFile(join(dataDir, "postgres", "password"), "utf8")).trim();
  const watcher = new pg.Client({ connectionString: url.toString() });
  await watcher.connect();
  let aliveWhenPostgresStopped: string[] | undefined;
  const postgresGone = new Promise<void>((done) => {
    const record = () => {
      aliveWhenPostgresStopped ??= services.filter((s) => isAlive(s.pid)).map((s) => `${s.name} (${s.pid})`);
      done();
    };
    watcher.on("error", record);
    watcher.on("end", record);
  });

  process.kill(-launcher.pid!, "SIGINT");
  const exit = await exited;
  await postgresGone;
  assert.deepEqual(exit, { code: 0, signal: null }, `the launcher exits cleanly\n${tail()}`);
  assert.deepEqual(aliveWhenPostgresStopped, [], `every service had exited before Postgres stopped\n${tail()}`);
  await waitFor("Postgres to be gone", () => !isAlive(postgres.pid), 10_000);
  assert.doesNotMatch(output, lostDatabase, "no service lost its database while draining");
  assert.match(output, /handing the task back/, "the agent drained its task");
  assert.deepEqual(await groupMembers(launcher.pid!), [], "nothing is left in the launcher's process group");
});

function kill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

async function processGroupOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
}

async function groupMembers(pgid: number): Promise<number[]> {
  const members: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(fields[2]) === pgid && fields[0] !== "Z") members.push(Number(entry));
  }
  return members;
}
