// The agent's step spawner: a small helper process that starts the steps'
// shells for the agent. It is plain JavaScript with no dependencies so that it
// stays small, because starting a process costs a fork of the process that
// starts it (several milliseconds from the agent, a fraction from here). It
// speaks newline-delimited JSON on stdin/stdout:
//   in:  {"op":"spawn","id","script","cwd","env"}  {"op":"kill","id","signal"}
//   out: {"ev":"started","id","pid"}  {"ev":"line","id","stream","text"}  {"ev":"exit","id","code","signal"}
// When its input ends (the agent is gone, even after kill -9) it kills every
// step it started and exits, so no step outlives its agent.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

const live = new Map(); // id -> pid (the step's process group)

function send(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

function readLines(stream, onLine) {
  return new Promise((resolve) => {
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on("line", onLine);
    lines.on("close", resolve);
  });
}

function start({ id, script, cwd, env }) {
  let child;
  try {
    child = spawn("/bin/sh", ["-e", "-c", script], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    send({ ev: "line", id, stream: "err", text: `cannot start /bin/sh: ${err.message}` });
    send({ ev: "exit", id, code: 127, signal: null });
    return;
  }
  const streams = [
    readLines(child.stdout, (text) => send({ ev: "line", id, stream: "out", text })),
    readLines(child.stderr, (text) => send({ ev: "line", id, stream: "err", text })),
  ];
  if (child.pid !== undefined) {
    live.set(id, child.pid);
    send({ ev: "started", id, pid: child.pid });
  }
  let finished = false;
  const finish = async (code, signal) => {
    if (finished) return;
    finished = true;
    // Whatever the step left behind in its group goes with it.
    if (child.pid !== undefined) killGroup(child.pid, "SIGKILL");
    live.delete(id);
    await Promise.all(streams);
    send({ ev: "exit", id, code, signal });
  };
  child.on("error", (err) => {
    send({ ev: "line", id, stream: "err", text: `cannot start /bin/sh: ${err.message}` });
    void finish(127, null);
  });
  child.on("close", (code, signal) => void finish(code, signal));
}

createInterface({ input: process.stdin, crlfDelay: Infinity })
  .on("line", (line) => {
    const message = JSON.parse(line);
    if (message.op === "spawn") start(message);
    else if (message.op === "kill") {
      const pid = live.get(message.id);
      if (pid !== undefined) killGroup(pid, message.signal);
    }
  })
  .on("close", () => {
    for (const pid of live.values()) killGroup(pid, "SIGKILL");
    process.exit(0);
  });
process.on("SIGTERM", () => {}); // stops with the agent's input, not on its own
process.on("SIGINT", () => {});
