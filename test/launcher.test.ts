// The launcher as people run it: `npm start` (main.ts) and `npm run demo`
// (demo.ts) as real processes, watched through their output, processes.json
// and the process table.
import { afterEach, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isAlive, postJson, request, trust, waitFor } from "./helpers/otto.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const mainScript = "services/launcher/src/main.ts";
const demoScript = "services/launcher/src/demo.ts";

interface ListedProcess {
  name: string;
  pid?: number;
  url?: string;
  restarts?: number;
}
interface ProcessesFile {
  gateway: string;
  processes: ListedProcess[];
}
interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const exitedFirst = Symbol("exited first");

// One launcher (or demo) process, started in a process group of its own so
// that cleanup can take down everything it started, whatever state it is in.
class Launched {
  readonly proc: ChildProcess;
  readonly exited: Promise<Exit>;
  // Every pid processes.json has listed while we watched, with its name.
  readonly pidsSeen = new Map<number, string>();
  readonly dataDir: string;
  #stdout = "";
  #stderr = "";
  #poller: NodeJS.Timeout | undefined;

  constructor(script: string, args: string[], dataDir: string, env: Record<string, string> = {}) {
    this.dataDir = dataDir;
    this.proc = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", script, ...args], {
      cwd: repoRoot,
      env: { ...hermeticEnv(), ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    this.proc.stdout!.setEncoding("utf8").on("data", (chunk: string) => (this.#stdout += chunk));
    this.proc.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.#stderr += chunk));
    this.exited = new Promise((resolveExit) => this.proc.on("close", (code, signal) => resolveExit({ code, signal })));
    // Watch processes.json for as long as the process runs, so that pids that
    // come and go between our own reads are recorded too.
    this.#poller = setInterval(() => void this.processes().catch(() => {}), 50);
    void this.exited.then(() => clearInterval(this.#poller));
  }

  get pid(): number {
    return this.proc.pid!;
  }
  get stdout(): string {
    return this.#stdout;
  }
  get stderr(): string {
    return this.#stderr;
  }
  tail(lines = 60): string {
    return `--- stdout (tail) ---\n${this.#stdout.split("\n").slice(-lines).join("\n")}\n--- stderr (tail) ---\n${this.#stderr.split("\n").slice(-lines).join("\n")}`;
  }

  async processes(): Promise<ProcessesFile> {
    const file = JSON.parse(await readFile(join(this.dataDir, "processes.json"), "utf8")) as ProcessesFile;
    for (const p of file.processes) if (typeof p.pid === "number") this.pidsSeen.set(p.pid, p.name);
    return file;
  }

  // Polls `check` like waitFor, but fails at once if the process exits first.
  async until<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000): Promise<T> {
    let exit: Exit | undefined;
    void this.exited.then((e) => (exit = e));
    const value = await waitFor<T | typeof exitedFirst>(
      what,
      async () => {
        const seenExit = exit; // a check that passes on the final state still counts
        try {
          const v = await check();
          if (v !== undefined && v !== false) return v;
        } catch (err) {
          if (!seenExit) throw err;
        }
        return seenExit ? exitedFirst : undefined;
      },
      timeoutMs,
    );
    if (value === exitedFirst) throw new Error(`process exited (${JSON.stringify(exit)}) before ${what}\n${this.tail()}`);
    return value;
  }

  waitForOutput(pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
    return this.until(`stdout to match ${pattern}`, () => this.#stdout.match(pattern) ?? undefined, timeoutMs);
  }

  // Kills the whole process group; harmless if everything has already exited.
  async kill(): Promise<void> {
    clearInterval(this.#poller);
    // Postgres runs in a process group of its own: killed by pid while it is still this data directory's.
    const targets = [-this.pid];
    for (const [pid, name] of this.pidsSeen) {
      const cmdline = name === "postgres" ? await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "") : "";
      if (cmdline.includes(this.dataDir)) targets.push(pid);
    }
    for (const target of targets) {
      try {
        process.kill(target, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await within("the process to be reaped", 10_000, this.exited).catch(() => {});
  }
}

// The environment without anything that would point the launcher elsewhere.
function hermeticEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    if (key.startsWith("OTTO_") || key === "DATABASE_URL" || key.startsWith("NODE_TEST")) continue;
    env[key] = value;
  }
  return env;
}

async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Live (non-zombie) processes whose process group is `pgid`, from /proc.
async function groupMembers(pgid: number): Promise<string[]> {
  if (!existsSync("/proc/self/stat")) return [];
  const members: string[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    const close = stat.lastIndexOf(")");
    if (close < 0) continue;
    const [state, , pgrp] = stat.slice(close + 2).split(" ");
    if (Number(pgrp) === pgid && state !== "Z") members.push(`${entry} ${stat.slice(stat.indexOf("(") + 1, close)}`);
  }
  return members;
}

function find(file: ProcessesFile, name: string): ListedProcess | undefined {
  return file.processes.find((p) => p.name === name);
}

function hasPid(p: ListedProcess | undefined): p is ListedProcess & { pid: number } {
  return p !== undefined && Number.isInteger(p.pid) && p.pid! > 0;
}

async function waitUntilAllGone(pids: Iterable<[number, string]>, timeoutMs = 5_000): Promise<void> {
  await waitFor(
    "every listed process to be gone",
    () => {
      const alive = [...pids].filter(([pid]) => isAlive(pid)).map(([pid, name]) => `${name} (${pid})`);
      if (alive.length > 0) throw new Error(`still alive: ${alive.join(", ")}`);
      return true;
    },
    timeoutMs,
  );
}

async function submitAndWait(gatewayUrl: string, yaml: string, logs: () => string): Promise<any> {
  const submitted = await postJson(gatewayUrl, "/otto.v1.RunService/SubmitRun", { pipelineYaml: yaml });
  assert.equal(submitted.status, 200, `${submitted.text}\n${logs()}`);
  const runId: string = submitted.json.run.id;
  return waitFor(
    `run ${runId} to finish`,
    async () => {
      const got = await postJson(gatewayUrl, "/otto.v1.RunService/GetRun", { runId });
      const state: string | undefined = got.json?.run?.state;
      return state && ["RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELED"].includes(state) ? got.json.run : undefined;
    },
    60_000,
    100,
  );
}

describe("the launcher", () => {
  const started: Launched[] = [];
  const dirs: string[] = [];

  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "otto-launcher-"));
    await chmod(dir, 0o755);
    dirs.push(dir);
    return dir;
  };
  const launch = (script: string, args: string[], dataDir: string, env?: Record<string, string>) => {
    const launched = new Launched(script, args, dataDir, env);
    started.push(launched);
    return launched;
  };

  afterEach(async () => {
    for (const launched of started.splice(0)) await launched.kill();
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });

  it("npm start: brings everything up, restarts a killed coordinator, and stops everything on SIGINT", { timeout: 240_000 }, async () => {
    const dir = await tempDir();
    const launcher = launch(mainScript, ["--data-dir", dir, "--port", "0", "--coordinators", "2", "--agents", "2"], dir);

    const gatewayUrl = (await launcher.waitForOutput(/^Otto gateway: (https:\/\/\S+)$/m, 120_000))[1];
    // It says where the admin token and the CA are, and how to use them with curl.
    const adminTokenFile = join(dir, "admin.token");
    const caFile = join(dir, "tls", "ca.pem");
    await launcher.waitForOutput(new RegExp(`curl --cacert ${caFile} -H "Authorization: Bearer \\$\\(cat ${adminTokenFile}\\)"`), 10_000);
    const adminToken = (await readFile(adminTokenFile, "utf8")).trim();
    assert.match(adminToken, /^otto_api_/);
    trust(caFile, gatewayUrl, adminToken);
    const expected = ["registry", "parser", "objects", "coordinator-1", "coordinator-2", "agent-1", "agent-2", "gateway", "s3", "postgres"];
    const listed = await launcher.until("processes.json to list every process with a pid", async () => {
      const file = await launcher.processes();
      return expected.every((name) => hasPid(find(file, name))) && file;
    });
    assert.deepEqual(listed.processes.map((p) => p.name).sort(), [...expected].sort(), "exactly the expected processes, each once");
    assert.equal(listed.gateway, gatewayUrl, "processes.json names the printed gateway");
    assert.equal(find(listed, "gateway")!.url, gatewayUrl);
    for (const p of listed.processes) assert.ok(isAlive(p.pid!), `${p.name} (pid ${p.pid}) is running`);
    assert.equal(new Set(listed.processes.map((p) => p.pid)).size, expected.length, "pids are distinct");

    const health = await request(`${gatewayUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(health.text, "ok\n");

    // kill -9 one coordinator: the launcher brings it back on the same port.
    const victim = find(listed, "coordinator-1") as ListedProcess & { pid: number };
    process.kill(victim.pid, "SIGKILL");
    const back = await launcher.until("coordinator-1 to be restarted and listening", async () => {
      const c = find(await launcher.processes(), "coordinator-1");
      return hasPid(c) && c.pid !== victim.pid && (c.restarts ?? 0) >= 1 && c.url !== undefined && c;
    });
    assert.equal(back.restarts, 1);
    assert.equal(back.url, victim.url, "the coordinator comes back on its old address");
    assert.ok(isAlive(back.pid!), "the new coordinator-1 is running");
    await launcher.waitForOutput(/coordinator-1 exited \(SIGKILL\); restarting in \d+ ms \(restart 1\)/, 10_000);
    assert.equal(isAlive(victim.pid), false, "the killed coordinator-1 is gone (reaped by the launcher)");
    const current = await launcher.until("processes.json to be readable", () => launcher.processes());
    for (const p of listed.processes.filter((p) => p.name !== "coordinator-1")) {
      assert.equal(find(current, p.name)?.pid, p.pid, `${p.name} was not restarted`);
      assert.equal(find(current, p.name)?.restarts, p.restarts, `${p.name} restart count is unchanged`);
    }

    // The system still runs pipelines, through either coordinator.
    const yaml = "name: after-restart\njobs:\n  one:\n    steps:\n      - run: echo still-working\n";
    const runs = await Promise.all([1, 2, 3].map(() => submitAndWait(gatewayUrl, yaml, () => launcher.tail(200))));
    for (const run of runs) assert.equal(run.state, "RUN_STATE_SUCCEEDED", JSON.stringify(run));

    // Ctrl-C: everything stops and the launcher exits cleanly.
    const everyPid = new Map(launcher.pidsSeen);
    assert.ok(everyPid.has(victim.pid) && everyPid.has(back.pid!), "both coordinator-1 pids were recorded");
    launcher.proc.kill("SIGINT");
    const exit = await within("the launcher to exit after SIGINT", 30_000, launcher.exited);
    assert.deepEqual(exit, { code: 0, signal: null }, `launcher exit after SIGINT\n${launcher.tail()}`);
    assert.match(launcher.stdout, /SIGINT: stopping every process/);
    for (const [pid, name] of launcher.pidsSeen) everyPid.set(pid, name);
    await waitUntilAllGone(everyPid);
    assert.deepEqual(await groupMembers(launcher.pid), [], "nothing is left in the launcher's process group");
  });

  it("Ctrl-C at any moment of start-up stops everything started so far, the embedded Postgres too, and the next start comes up", { timeout: 300_000 }, async () => {
    const dir = await tempDir();
    const dataDir = join(dir, "data");
    const postgresOf = async () => {
      const found: string[] = [];
      for (const entry of await readdir("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0").join(" ");
        if (cmdline.includes(join(dataDir, "postgres")) && /postgres/.test(cmdline)) found.push(`${entry} ${cmdline}`);
      }
      return found;
    };
    for (const moment of [/starting embedded PostgreSQL/, /registry.*listening/, /coordinator-1.*listening/]) {
      const launcher = launch(mainScript, ["--port", "0", "--data-dir", dataDir], dataDir);
      await launcher.waitForOutput(moment);
      launcher.proc.kill("SIGINT");
      const exit = await within(`the launcher to exit after SIGINT at ${moment}`, 60_000, launcher.exited);
      assert.deepEqual(exit, { code: 130, signal: null }, launcher.tail());
      assert.match(launcher.stderr, /SIGINT during start-up: everything started so far is stopped/);
      assert.deepEqual(await groupMembers(launcher.pid), [], `nothing is left in the launcher's process group after SIGINT at ${moment}`);
      assert.deepEqual(await postgresOf(), [], `no Postgres is left after SIGINT at ${moment}`);
    }
    const again = launch(mainScript, ["--port", "0", "--data-dir", dataDir], dataDir);
    await again.waitForOutput(/Otto gateway: https:/);
    again.proc.kill("SIGINT");
    assert.deepEqual(await within("the launcher to stop", 60_000, again.exited), { code: 0, signal: null }, again.tail());
    assert.deepEqual(await postgresOf(), []);
  });

  it("a Postgres left running by a launcher killed with -9 is stopped by the next start, which comes up", { timeout: 300_000 }, async () => {
    const dir = await tempDir();
    const dataDir = join(dir, "data");
    const first = launch(mainScript, ["--port", "0", "--data-dir", dataDir], dataDir);
    await first.waitForOutput(/Otto gateway: https:/);
    const postgres = find(await first.processes(), "postgres");
    assert.ok(postgres?.pid && isAlive(postgres.pid), "the embedded Postgres runs");
    process.kill(-first.pid, "SIGKILL");
    await within("the killed launcher to be reaped", 30_000, first.exited);
    assert.ok(isAlive(postgres.pid), "its Postgres, in a process group of its own, outlived it");
    const second = launch(mainScript, ["--port", "0", "--data-dir", dataDir], dataDir);
    await second.waitForOutput(/Otto gateway: https:/);
    assert.equal(isAlive(postgres.pid), false, "the leftover Postgres was stopped");
    const now = find(await second.processes(), "postgres");
    assert.ok(now?.pid && now.pid !== postgres.pid && isAlive(now.pid), "a new one runs");
    second.proc.kill("SIGINT");
    assert.deepEqual(await within("the launcher to stop", 60_000, second.exited), { code: 0, signal: null }, second.tail());
  });

  describe("rejects bad flags before starting anything", () => {
    const cases: Array<{ args: string[]; env?: Record<string, string>; message: RegExp }> = [
      { args: ["--agents", "0"], message: /--agents must be an integer >= 1, got "0"/ },
      { args: ["--agents", "x"], message: /--agents must be an integer >= 1, got "x"/ },
      { args: ["--agents"], message: /--agents needs a value/ },
      { args: [], env: { OTTO_AGENTS: "x" }, message: /OTTO_AGENTS must be an integer >= 1, got "x"/ },
      { args: ["--bogus-flag"], message: /unknown flag --bogus-flag\nusage: npm start -- \[FLAGS\]\n[^]*--public-url URL/ },
      { args: ["--coordinator", "3"], message: /unknown flag --coordinator\n/ },
      { args: ["stray"], message: /unexpected argument "stray"/ },
      { args: ["--public-url", "http://ci.example.com:7670"], message: /--public-url "http:\/\/ci.example.com:7670" must start with https:\/\/ \(Otto serves TLS\)/ },
      { args: ["--public-url", "https://ci.example.com:7670/otto"], message: /must be a scheme, a host and a port, with no path/ },
      { args: ["--public-url", "https://ci.example.com:7670", "--port", "7000"], message: /--port 7000 and --public-url https:\/\/ci.example.com:7670 name different ports/ },
    ];
    for (const { args, env, message } of cases) {
      const label = [...Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`), ...args].join(" ");
      it(label, { timeout: 60_000 }, async () => {
        const dir = await tempDir();
        const dataDir = join(dir, "data");
        const launcher = launch(mainScript, ["--port", "0", "--data-dir", dataDir, ...args], dataDir, env);
        const exit = await within("the launcher to exit", 30_000, launcher.exited);
        assert.equal(exit.signal, null, launcher.tail());
        assert.notEqual(exit.code, 0, launcher.tail());
        assert.match(launcher.stderr, message);
        assert.equal(launcher.stdout, "", "nothing is announced");
        assert.equal(existsSync(dataDir), false, "the data directory is not even created");
        assert.deepEqual(await groupMembers(launcher.pid), [], "no process was left behind");
      });
    }
  });

  it("--help prints every flag and starts nothing", { timeout: 60_000 }, async () => {
    const dir = await tempDir();
    const dataDir = join(dir, "data");
    const launcher = launch(mainScript, ["--data-dir", dataDir, "--help"], dataDir);
    const exit = await within("the launcher to exit", 30_000, launcher.exited);
    assert.deepEqual(exit, { code: 0, signal: null }, launcher.tail());
    for (const flag of ["--coordinators N", "--agents N", "--port N", "--public-url URL", "--listen ADDR", "--data-dir DIR", "--insecure"]) assert.ok(launcher.stdout.includes(flag), flag);
    assert.equal(existsSync(dataDir), false);
  });

  it("npm run demo: runs hello.otto.yml with live logs, then stops everything and exits 0", { timeout: 240_000 }, async () => {
    const dir = await tempDir();
    const demo = launch(demoScript, ["--data-dir", dir], dir);
    const exit = await within("the demo to finish", 180_000, demo.exited);
    assert.deepEqual(exit, { code: 0, signal: null }, demo.tail());

    assert.match(demo.stdout, /^\[build\] \S+ compile \| hi from \S+/m);
    assert.match(demo.stdout, /^\[test\] .*test 3 passed$/m);
    assert.match(demo.stdout, /^run [0-9a-f-]{36} \(hello\): SUCCEEDED$/m);
    assert.match(demo.stdout, /^stopping Otto\.\.\.$/m);

    // Once stopped, processes.json keeps only postgres's pid (the supervisor
    // drops the pids of exited children), so it was also watched while the
    // demo ran: every pid it ever listed must be gone.
    const final = await demo.processes();
    assert.ok(hasPid(find(final, "postgres")), "the final processes.json still names postgres's pid");
    const names = new Set(demo.pidsSeen.values());
    for (const name of ["postgres", "s3", "registry", "parser", "objects", "coordinator-1", "agent-1", "gateway"]) {
      assert.ok(names.has(name), `processes.json listed ${name} with a pid (saw ${[...names].join(", ")})`);
    }
    await waitUntilAllGone(demo.pidsSeen);
    assert.deepEqual(await groupMembers(demo.pid), [], "nothing is left in the demo's process group");
  });
});
