// The agent's step launcher in JavaScript, for hosts where the native one
// (native/step-launcher.c, which documents the protocol both speak) was not
// built. It is plain JavaScript with no dependencies so that it stays small:
// starting a process forks the process that starts it. Node gives a child's
// stdout and stderr a pipe each, so this passes on whole lines only, lest a
// line of one stream be cut by a piece of the other.
import { spawn } from "node:child_process";
import { constants } from "node:os";

const protocol = "3";
const live = new Map(); // id -> pid (the step's process group)
const outputs = new Map(); // id -> the step's stdout and stderr, until they close

if (process.argv[2] === "--protocol") {
  console.log(protocol);
  process.exit(0);
}

function send(text) {
  process.stdout.write(text);
}

function output(id, bytes) {
  if (bytes.length === 0) return;
  send(`output ${id} ${bytes.length}\n`);
  send(bytes);
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone already
  }
}

// The most of a line kept back waiting for its end (the agent cuts lines
// longer than 4 Mi characters into pieces anyway).
const maxPartialBytes = 4 * 1024 * 1024;

// Passes on the stream's complete lines as they come, and what is left at its end.
function passLines(id, stream) {
  let partial = Buffer.alloc(0);
  stream.on("data", (chunk) => {
    const data = partial.length > 0 ? Buffer.concat([partial, chunk]) : chunk;
    const end = data.length > maxPartialBytes ? data.length : data.lastIndexOf(10) + 1;
    output(id, data.subarray(0, end));
    partial = Buffer.from(data.subarray(end));
  });
  return new Promise((resolve) => {
    stream.on("close", () => {
      output(id, partial.length > 0 ? Buffer.concat([partial, Buffer.from("\n")]) : partial);
      resolve();
    });
  });
}

function cannotStart(id, cwd, err) {
  output(id, Buffer.from(`cannot start /bin/sh in ${cwd}: ${err.message}\n`));
  send(`exit ${id} 127 0\n`);
}

function startStep(id, [cwd, script, ...env]) {
  const environment = Object.fromEntries(env.map((entry) => [entry.slice(0, entry.indexOf("=")), entry.slice(entry.indexOf("=") + 1)]));
  const child = spawn("/bin/sh", ["-e", "-c", script], { cwd, env: environment, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const pid = child.pid;
  if (pid === undefined) {
    child.on("error", (err) => cannotStart(id, cwd, err));
    return;
  }
  live.set(id, pid);
  send(`started ${id} ${pid}\n`);
  outputs.set(id, [child.stdout, child.stderr]);
  const streams = Promise.all([passLines(id, child.stdout), passLines(id, child.stderr)]);
  child.on("exit", async (code, signal) => {
    // What the step left behind in its group goes with it.
    killGroup(pid, "SIGKILL");
    live.delete(id);
    await streams;
    outputs.delete(id);
    send(`exit ${id} ${code ?? -1} ${signal ? constants.signals[signal] : 0}\n`);
  });
}

// Requests: `<op>\0<id>\0<n>\0` and then n fields, each ended by a NUL.
let input = Buffer.alloc(0);
function nextRequest() {
  let at = 0;
  const fields = [];
  let wanted = 3;
  while (fields.length < wanted) {
    const end = input.indexOf(0, at);
    if (end < 0) return undefined;
    fields.push(input.toString("utf8", at, end));
    at = end + 1;
    if (fields.length === 3) wanted = 3 + Number(fields[2]);
  }
  input = input.subarray(at);
  return fields;
}

process.stdin.on("data", (chunk) => {
  input = input.length > 0 ? Buffer.concat([input, chunk]) : chunk;
  for (let request = nextRequest(); request; request = nextRequest()) {
    const [op, id, , ...fields] = request;
    if (op === "spawn") startStep(id, fields);
    else if (op === "kill" && live.has(id)) killGroup(live.get(id), Number(fields[0]));
    else if (op === "pause") for (const stream of outputs.get(id) ?? []) stream.pause();
    else if (op === "resume") for (const stream of outputs.get(id) ?? []) stream.resume();
  }
  input = Buffer.from(input);
});
process.stdin.on("end", () => {
  for (const pid of live.values()) killGroup(pid, "SIGKILL");
  process.exit(0);
});
process.on("SIGTERM", () => {}); // stops with the agent's input, not on its own
process.on("SIGINT", () => {});
