import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, type WriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { EventEmitter } from "node:events";

export type LogMode = "pretty" | "raw" | "quiet";

export interface ChildSpec {
  name: string;
  entry: string;
  env: Record<string, string>;
  // Variables of the launcher's own environment this child must not inherit.
  withhold?: (name: string) => boolean;
}

export interface ChildInfo {
  name: string;
  pid: number | undefined;
  url: string | undefined;
  restarts: number;
}

interface Child {
  spec: ChildSpec;
  process: ChildProcess | undefined;
  url: string | undefined;
  port: number;
  restarts: number;
  backoff: number;
  startedAt: number;
  stopping: boolean;
}

const maxBackoffMs = 5_000;

// Each process runs from its TypeScript sources (the workspace packages'
// "otto-source" export condition; their tarballs ship compiled dist/). V8
// sizes its heap by the limit it is given: with these (a small young
// generation, a 256 MB old one) each process stays around 100-150 MB resident
// under load rather than growing towards 200. OTTO_NODE_FLAGS replaces them.
const nodeFlags = [
  "--disable-warning=ExperimentalWarning",
  "--conditions=otto-source",
  ...(process.env.OTTO_NODE_FLAGS ?? "--max-semi-space-size=4 --max-old-space-size=256").split(/\s+/).filter(Boolean),
];

// Starts Otto's processes, keeps them running (a crashed child comes back
// on the same port after a backoff), and stops them all.
function inherited(withhold: ((name: string) => boolean) | undefined): NodeJS.ProcessEnv {
  if (!withhold) return process.env;
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !withhold(name)));
}

export class Supervisor extends EventEmitter {
  readonly #children = new Map<string, Child>();
  readonly #mode: LogMode;
  readonly #logFile: WriteStream | undefined;
  #stopping = false;

  constructor(options: { mode: LogMode; logFile?: string }) {
    super();
    this.#mode = options.mode;
    this.#logFile = options.logFile ? createWriteStream(options.logFile, { flags: "a", mode: 0o600 }) : undefined;
  }

  // Resolves with the child's URL once it has announced that it is listening.
  start(spec: ChildSpec, port = 0): Promise<string> {
    const child: Child = { spec, process: undefined, url: undefined, port, restarts: 0, backoff: 0, startedAt: 0, stopping: false };
    this.#children.set(spec.name, child);
    this.#spawn(child);
    return this.waitForUrl(spec.name);
  }

  waitForUrl(name: string): Promise<string> {
    const child = this.#children.get(name)!;
    if (child.url) return Promise.resolve(child.url);
    return new Promise((resolve, reject) => {
      const onListening = (who: string, url: string) => {
        if (who !== name) return;
        cleanup();
        resolve(url);
      };
      const onGaveUp = (who: string) => {
        if (who !== name) return;
        cleanup();
        reject(new Error(`${name} did not start; see its log`));
      };
      const cleanup = () => {
        this.off("listening", onListening);
        this.off("gave-up", onGaveUp);
      };
      this.on("listening", onListening);
      this.on("gave-up", onGaveUp);
    });
  }

  #spawn(child: Child): void {
    const { spec } = child;
    const proc = spawn(process.execPath, [...nodeFlags, spec.entry], {
      env: {
        ...inherited(spec.withhold),
        // The launcher's OTEL_SERVICE_NAME names the system: "otto-coordinator", ...
        OTEL_SERVICE_NAME: `${process.env.OTEL_SERVICE_NAME || "otto"}-${spec.name.replace(/-\d+$/, "")}`,
        ...spec.env,
        OTTO_PORT: String(child.port),
        OTTO_PARENT_PID: String(process.pid),
      },
      stdio: ["ignore", "pipe", "pipe"],
      // Own process group: a terminal's Ctrl-C reaches only the launcher,
      // which then stops the children in order.
      detached: true,
    });
    child.process = proc;
    child.url = undefined;
    child.startedAt = Date.now();
    createInterface({ input: proc.stdout! }).on("line", (line) => this.#onLine(child, line));
    createInterface({ input: proc.stderr! }).on("line", (line) => this.#output(spec.name, line));
    proc.on("exit", (code, signal) => this.#onExit(child, proc, code, signal));
    this.emit("changed");
  }

  #onLine(child: Child, line: string): void {
    if (!child.url && line.includes('"listening"')) {
      try {
        const parsed = JSON.parse(line);
        if (parsed.msg === "listening" && typeof parsed.url === "string") {
          child.url = parsed.url;
          child.port = Number(new URL(parsed.url).port);
          this.emit("listening", child.spec.name, parsed.url);
          this.emit("changed");
        }
      } catch {
        // not a log line of ours
      }
    }
    this.#output(child.spec.name, line);
  }

  #onExit(child: Child, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child.process !== proc) return;
    child.process = undefined;
    this.emit("exit", child.spec.name, code, signal);
    this.emit("changed");
    if (this.#stopping || child.stopping) return;
    const upMs = Date.now() - child.startedAt;
    if (upMs > 10_000) child.backoff = 0;
    const delay = Math.min(maxBackoffMs, 250 * 2 ** child.backoff);
    child.backoff++;
    child.restarts++;
    this.log(`${child.spec.name} exited (${signal ?? `code ${code}`}); restarting in ${delay} ms (restart ${child.restarts})`);
    if (child.backoff > 20) {
      this.log(`${child.spec.name} keeps crashing; giving up on it`);
      this.emit("gave-up", child.spec.name);
      return;
    }
    setTimeout(() => {
      if (!this.#stopping && !child.stopping) this.#spawn(child);
    }, delay).unref();
  }

  #output(name: string, line: string): void {
    this.#logFile?.write(`${name} ${line}\n`);
    if (this.#mode === "quiet") return;
    if (this.#mode === "raw") {
      process.stdout.write(line + "\n");
      return;
    }
    process.stdout.write(`${name.padEnd(14)}| ${prettify(line)}\n`);
  }

  log(message: string): void {
    this.#output("launcher", JSON.stringify({ time: new Date().toISOString(), level: "info", service: "launcher", msg: message }));
  }

  info(): ChildInfo[] {
    return [...this.#children.values()].map((c) => ({
      name: c.spec.name,
      pid: c.process?.pid,
      url: c.url,
      restarts: c.restarts,
    }));
  }

  pid(name: string): number | undefined {
    return this.#children.get(name)?.process?.pid;
  }

  // Stops one child for good: it is not started again.
  stop(name: string, deadlineMs = 10_000): Promise<void> {
    const child = this.#children.get(name);
    return child ? this.#stopChild(child, deadlineMs) : Promise.resolve();
  }

  // Stops children in the reverse order of their start, one kind at a time
  // (all agents together, then all coordinators, ...), so that those still
  // running can take what the stopping ones hand over: SIGTERM, then SIGKILL
  // for any that have not exited within the deadline.
  async stopAll(deadlineMs = 10_000): Promise<void> {
    this.#stopping = true;
    const kinds: Child[][] = [];
    for (const child of [...this.#children.values()].reverse()) {
      const kind = child.spec.name.replace(/-\d+$/, "");
      const last = kinds[kinds.length - 1];
      if (last && last[0].spec.name.replace(/-\d+$/, "") === kind) last.push(child);
      else kinds.push([child]);
    }
    for (const children of kinds) await Promise.all(children.map((child) => this.#stopChild(child, deadlineMs)));
    await new Promise<void>((resolve) => (this.#logFile ? this.#logFile.end(resolve) : resolve()));
  }

  #stopChild(child: Child, deadlineMs: number): Promise<void> {
    child.stopping = true;
    const proc = child.process;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => proc.kill("SIGKILL"), deadlineMs);
      proc.once("exit", () => {
        clearTimeout(timer);
        resolve();
      });
      proc.kill("SIGTERM");
    });
  }
}

function prettify(line: string): string {
  if (!line.startsWith("{")) return line;
  try {
    const { time, level, service, msg, ...rest } = JSON.parse(line);
    const extra = Object.keys(rest).length > 0 ? " " + JSON.stringify(rest) : "";
    return `${String(time).slice(11, 23)} ${String(level).toUpperCase().padEnd(5)} ${msg}${extra}`;
  } catch {
    return line;
  }
}
