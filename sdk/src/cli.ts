#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
// otto: the command line for Otto, built on the SDK.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { TokenKind } from "@otto/gen/v1/admin_service_pb";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState } from "@otto/gen/v1/run_pb";
import { createOttoClient, defaultGatewayUrl } from "./client.ts";
import type { OttoClient } from "./clients.ts";
import type { Project } from "@otto/gen/v1/project_service_pb";
import { describeRun, followRun } from "./follow-run.ts";
import { followLogs, readLogLines } from "./logs.ts";
import { isFinal, submit } from "./runs.ts";
import { watchRuns } from "./events.ts";
import type { RunEvent } from "@otto/gen/v1/run_pb";
import type { RunSummary } from "@otto/gen/v1/run_service_pb";
import { runStateName } from "@otto/contracts/run-state";

const usage = `usage: otto [--url URL] [--token TOKEN] [--ca FILE] COMMAND
  run FILE [--follow]     submit a pipeline file; --follow prints its logs live and waits
  runs [--pipeline P] [--project P] [--state S]
                          list recent runs (newest first), only those of a
                          pipeline, a project or in a state when asked
  get RUN                 show a run, its jobs and steps
  logs RUN JOB [--follow] [--tail N | --line N | --offset BYTES] [--limit N] [--attempt N] [--raw]
               [--grep PATTERN [--regex] [--ignore-case] [--context N]]
                          print a job's log: from the end, a line, at most N
                          lines; only lines matching PATTERN (searched by the
                          server), each as NUMBER: (and context lines as NUMBER-)
  cancel RUN              cancel a run
  rerun RUN [--failed]    run a finished run again; --failed reuses the jobs that
                          succeeded and runs only the rest
  approve RUN JOB [--comment TEXT]
  reject RUN JOB [--comment TEXT]
                          answer a job waiting for approval
  jobs add FILE [--run RUN]
                          in a step: add the jobs of FILE (a YAML document whose
                          only key is \`jobs\`; - for stdin) to the step's run
                          (OTTO_RUN_ID), with the step's token; its problems are
                          printed as FILE:LINE:COL: MESSAGE lines (exit code 1)
  artifacts RUN           list a run's artifacts
  artifact RUN JOB NAME   write an artifact's bytes to stdout
  events [--pipeline P] [--project P] [--state S] [--from-beginning] [--after CURSOR]
                          print every run's events as they happen, one line each
                          (with --cursors, each line ends with its cursor)
  whoami                  show the token in use: its name, id, kind and scopes
  agents                  list live agents, their labels and busy/free slots
  token create NAME [--scope S]... [--ttl SECONDS] [--join]
                          make an API token (scopes runs:read, runs:write,
                          agents:read, admin)
                          or, with --join, a join token for agents; prints it once
  token list              list tokens (never their values)
  token revoke ID         revoke a token at once
  agent revoke AGENT      revoke an agent's credentials; it cannot join again
  secret set NAME         store a secret, its value read from stdin
  secret list             list secret names
  secret delete NAME      delete a secret
  retention sweep         delete now what retention expired (finished runs, logs,
                          artifacts), as the daily sweep does
  project create NAME --repo URL [--pipeline PATH] [--branch B] [--branches GLOBS]
               [--tags GLOBS] [--forge github|gitlab|gitea --forge-api URL
               --forge-token-secret NAME [--forge-repo OWNER/REPO]]
                          make a project; prints its webhook URL and secret (once)
  project list            list projects
  project get NAME        show a project
  project delete NAME     delete a project (its runs stay)
  project rotate-secret NAME
                          a new webhook secret, printed once
  project run NAME [--branch B] [--sha SHA]
                          run a branch's tip (or a commit) of the project
  project approve-fork NAME PULL_REQUEST SHA
                          let a fork's pull request have secrets at that commit,
                          and run it
  schedule create PROJECT --cron "MIN HOUR DOM MON DOW" [--branch B]
                          run a branch's tip on a schedule (UTC)
  schedule list [PROJECT] list schedules
  schedule delete ID      delete a schedule
The gateway is --url, else OTTO_URL, else ${defaultGatewayUrl}.
The token is --token, else OTTO_TOKEN, else the file OTTO_TOKEN_FILE, else
.otto/admin.token when there is one (as \`npm start\` makes it).
The CA is --ca, else OTTO_CA_FILE, else .otto/tls/ca.pem when there is one.`;

export async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  const option = (name: string) => {
    const at = args.indexOf(name);
    if (at < 0) return undefined;
    const value = args[at + 1] ?? "";
    args.splice(at, 2);
    return value;
  };
  const url = option("--url") ?? (process.env.OTTO_URL || defaultGatewayUrl);
  const token = option("--token") ?? (process.env.OTTO_TOKEN || (await readToken(process.env.OTTO_TOKEN_FILE || localFile(".otto/admin.token"))));
  const caFile = option("--ca") ?? (process.env.OTTO_CA_FILE || localFile(".otto/tls/ca.pem"));
  const scopes: string[] = [];
  for (let scope = option("--scope"); scope !== undefined; scope = option("--scope")) scopes.push(scope);
  const ttl = option("--ttl");
  const projectOptions = {
    repo: option("--repo"),
    pipeline: option("--pipeline"),
    branch: option("--branch"),
    branches: option("--branches"),
    tags: option("--tags"),
    forge: option("--forge"),
    forgeApi: option("--forge-api"),
    forgeTokenSecret: option("--forge-token-secret"),
    forgeRepo: option("--forge-repo"),
    sha: option("--sha"),
    cron: option("--cron"),
  };
  const comment = option("--comment") ?? "";
  const eventOptions = { project: option("--project"), state: option("--state"), after: option("--after") };
  const runOption = option("--run");
  const number = (name: string) => {
    const value = option(name);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) throw new UsageError(`${name} takes a number, not "${value}"`);
    return Number(value);
  };
  const logOptions = {
    tail: number("--tail"),
    line: number("--line"),
    offset: number("--offset"),
    limit: number("--limit"),
    attempt: number("--attempt"),
    context: number("--context"),
    grep: option("--grep"),
  };
  const flags = new Set(["--follow", "-f", "--join", "--raw", "--regex", "--ignore-case", "-i", "--failed", "--from-beginning", "--cursors"]);
  const flag = (...names: string[]) => names.some((name) => args.includes(name));
  const join = flag("--join");
  const follow = flag("--follow", "-f");
  const [command, ...rest] = args.filter((a) => !flags.has(a));
  const client = createOttoClient({ baseUrl: url, token, caFile });
  const need = (n: number) => {
    if (rest.length < n) throw new UsageError();
  };
  switch (command) {
    case "run": {
      need(1);
      const run = await submit(client, await readFile(rest[0], "utf8"), basename(rest[0]));
      console.log(`run ${run.id} submitted`);
      if (!follow) return 0;
      const final = await followRun(client, run.id, {
        log: (job, line) => console.log(`[${job}] ${line}`),
        event: (text) => console.log(`-- ${text}`),
      });
      console.log(describeRun(final));
      return final.state === RunState.SUCCEEDED ? 0 : 1;
    }
    case "runs": {
      const filter = { pipeline: projectOptions.pipeline ?? "", project: eventOptions.project ?? "", state: stateOption(eventOptions.state) };
      const { runs } = await client.runs.listRuns({ pageSize: 20, ...filter });
      for (const run of runs) {
        const when = run.createdAt ? new Date(Number(run.createdAt.seconds) * 1000).toISOString() : "";
        const from = run.source?.project ? `  ${run.source.project} #${run.source.number} ${run.source.branch || run.source.tag} ${run.source.sha.slice(0, 7)}` : "";
        console.log(`${run.id}  ${runStateName(run.state).padEnd(9)}  ${when}  ${run.name}${from}`);
      }
      return 0;
    }
    case "get": {
      need(1);
      const { run } = await client.runs.getRun({ runId: rest[0] });
      console.log(describeRun(run!));
      return 0;
    }
    case "logs": {
      need(2);
      const options = { ...logOptions, follow, raw: flag("--raw"), regex: flag("--regex"), ignoreCase: flag("--ignore-case", "-i") };
      if (options.grep === undefined) {
        for await (const line of followLogs(client, rest[0], rest[1], options)) console.log(line);
        return 0;
      }
      let first = true;
      for await (const line of readLogLines(client, rest[0], rest[1], options)) {
        if (!line.follows && !first) console.log("--");
        first = false;
        console.log(`${line.number}${line.match ? ":" : "-"}${line.text}`);
      }
      return 0;
    }
    case "rerun": {
      need(1);
      const { run } = await client.runs.rerunRun({ runId: rest[0], failedOnly: flag("--failed") });
      const reused = run!.jobs.filter((j) => j.state === RunState.SUCCEEDED).map((j) => j.name);
      console.log(`run ${run!.id} reruns ${rest[0]}${reused.length ? ` (reused: ${reused.join(", ")})` : ""}`);
      return 0;
    }
    case "approve":
    case "reject": {
      need(2);
      const decide = command === "approve" ? client.runs.approveJob : client.runs.rejectJob;
      const { run } = await decide({ runId: rest[0], job: rest[1], comment });
      const job = run!.jobs.find((j) => j.name === rest[1]);
      console.log(`job ${rest[1]} of run ${rest[0]} ${command === "approve" ? "approved" : "rejected"}: ${job ? runStateName(job.state) : "?"}`);
      return 0;
    }
    case "cancel": {
      need(1);
      const { run } = await client.runs.cancelRun({ runId: rest[0] });
      const note = isFinal(run!.state) ? (run!.state === RunState.CANCELED ? "" : " (already finished)") : " (cancel requested)";
      console.log(`run ${run!.id}: ${runStateName(run!.state)}${note}`);
      return 0;
    }
    case "jobs": {
      need(2);
      if (rest[0] !== "add") throw new UsageError();
      return addJobsCommand(client, rest[1], runOption ?? process.env.OTTO_RUN_ID ?? "");
    }
    case "artifacts": {
      need(1);
      const { artifacts } = await client.artifacts.listArtifacts({ runId: rest[0] });
      for (const a of artifacts) console.log(`${a.job}  attempt ${a.attempt}  ${String(a.size).padStart(10)}  ${a.name}`);
      return 0;
    }
    case "artifact": {
      need(3);
      const { url, artifact } = await client.artifacts.getArtifactUrl({ runId: rest[0], job: rest[1], name: rest[2] });
      const sha256 = await download(url, process.stdout);
      // The bytes are out already; a script that goes on only on exit code 0
      // does not use bytes other than those the job uploaded.
      if (artifact?.sha256 && sha256 !== artifact.sha256) {
        throw new Error(`artifact ${rest[2]} is not what its job uploaded: its SHA-256 is ${sha256}, its upload's was ${artifact.sha256}`);
      }
      return 0;
    }
    case "token": {
      need(1);
      if (rest[0] === "create") {
        need(2);
        const kind = join ? TokenKind.JOIN : TokenKind.API;
        const { token: created, info } = await client.admin.createToken({ kind, name: rest[1], scopes, ttlSeconds: ttl ? Number(ttl) : 0 });
        console.error(`token ${info!.id} (${join ? "join" : info!.scopes.join(", ")}) made; it is shown only now:`);
        console.log(created);
        return 0;
      }
      if (rest[0] === "list") {
        const { tokens } = await client.admin.listTokens({});
        for (const t of tokens) {
          const state = t.revokedAt ? "revoked" : t.expiresAt && timestampDate(t.expiresAt) < new Date() ? "expired" : "live";
          console.log(`${t.id}  ${(kindNames[t.kind] ?? "?").padEnd(5)}  ${state.padEnd(7)}  ${t.name}${t.scopes.length ? `  [${t.scopes.join(" ")}]` : ""}`);
        }
        return 0;
      }
      if (rest[0] === "revoke") {
        need(2);
        const { info } = await client.admin.revokeToken({ id: rest[1] });
        console.log(`token ${info!.id} (${info!.name}) revoked`);
        return 0;
      }
      throw new UsageError();
    }
    case "events": {
      const filter = { pipeline: projectOptions.pipeline ?? "", project: eventOptions.project ?? "", state: stateOption(eventOptions.state) };
      const cursors = flag("--cursors");
      for await (const { event, run, cursor } of watchRuns(client, { afterCursor: eventOptions.after, fromBeginning: flag("--from-beginning"), filter })) {
        console.log(describeEvent(event, run) + (cursors ? `  ${cursor}` : ""));
      }
      return 0;
    }
    case "whoami": {
      const { token: info } = await client.account.whoAmI({});
      console.log(`${info!.name}  ${kindNames[info!.kind] ?? "none"}  ${info!.id || "-"}  ${info!.scopes.join(",")}`);
      return 0;
    }
    case "agents": {
      const { agents } = await client.admin.listAgents({});
      for (const agent of agents) {
        console.log(`${agent.id}  ${agent.busySlots}/${agent.slots} busy  [${agent.labels.join(", ")}]${agent.jobs.map((j) => `  ${j.runId}/${j.job}#${j.attempt}`).join("")}`);
      }
      return 0;
    }
    case "agent": {
      need(2);
      if (rest[0] !== "revoke") throw new UsageError();
      const { credentials } = await client.admin.revokeAgent({ agentId: rest[1] });
      console.log(`agent ${rest[1]} revoked (${credentials.length} credential${credentials.length === 1 ? "" : "s"})`);
      return 0;
    }
    case "secret": {
      need(1);
      if (rest[0] === "set") {
        need(2);
        const value = (await readStdin()).replace(/\r?\n$/, "");
        await client.admin.setSecret({ name: rest[1], value });
        console.log(`secret ${rest[1]} set`);
        return 0;
      }
      if (rest[0] === "list") {
        const { secrets } = await client.admin.listSecrets({});
        for (const s of secrets) console.log(s.name);
        return 0;
      }
      if (rest[0] === "delete") {
        need(2);
        await client.admin.deleteSecret({ name: rest[1] });
        console.log(`secret ${rest[1]} deleted`);
        return 0;
      }
      throw new UsageError();
    }
    case "retention": {
      need(1);
      if (rest[0] !== "sweep") throw new UsageError();
      const swept = await client.admin.sweepRetention({});
      const days = (d = 0) => (d === 0 ? "forever" : d >= 1 ? `${d} days` : `${+(d * 86_400).toPrecision(6)} seconds`);
      const p = swept.policy;
      console.log(`retention: runs ${days(p?.runDays)}, logs ${days(p?.logDays)}, artifacts ${days(p?.artifactDays)}`);
      console.log(
        `deleted ${swept.runsDeleted} runs, ${swept.logsDeleted} logs, ${swept.artifactsDeleted} artifacts (${swept.objectsDeleted} stored objects)` +
          (swept.runsDeferred > 0n ? `; ${swept.runsDeferred} runs left for the next sweep (a log still open or not yet archived)` : ""),
      );
      return 0;
    }
    case "project":
      return projectCommand(client, url, rest, projectOptions);
    case "schedule":
      return scheduleCommand(client, rest, projectOptions);
    default:
      throw new UsageError();
  }
}

// `otto jobs add FILE`: a step adds jobs to its own run. A refused file's
// problems are printed one a line, as the parser words them
// (FILE:LINE:COL: MESSAGE), and the command exits 1, failing the step.
async function addJobsCommand(client: OttoClient, file: string, runId: string): Promise<number> {
  if (!runId) throw new UsageError("jobs add needs the run: in a step OTTO_RUN_ID says it, elsewhere give --run RUN");
  const jobsYaml = file === "-" ? await readStdin() : await readFile(file, "utf8");
  const fileName = file === "-" ? "stdin" : basename(file);
  try {
    const { added, alreadyAdded } = await client.runs.addJobs({ runId, source: { case: "jobsYaml", value: jobsYaml }, fileName });
    if (added.length > 0) console.log(`added to run ${runId}: ${added.join(", ")}`);
    if (alreadyAdded.length > 0) console.log(`already in run ${runId}, as added before: ${alreadyAdded.join(", ")}`);
    return 0;
  } catch (err) {
    const refused = err instanceof ConnectError && (err.code === Code.InvalidArgument || err.code === Code.ResourceExhausted);
    if (!refused) throw err;
    for (const line of err.rawMessage.split("\n")) console.error(line);
    return 1;
  }
}

async function projectCommand(client: OttoClient, url: string, rest: string[], o: Record<string, string | undefined>): Promise<number> {
  const [verb, name] = rest;
  if (verb === "list") {
    const { projects } = await client.projects.listProjects({});
    for (const p of projects) console.log(`${p.name}  ${p.repoUrl}  ${p.forge?.kind ?? "-"}  runs: ${p.lastRunNumber}`);
    return 0;
  }
  if (!name) throw new UsageError();
  const globs = (text: string | undefined) => (text ? text.split(",").map((g) => g.trim()).filter(Boolean) : []);
  switch (verb) {
    case "create": {
      if (!o.repo) throw new UsageError("project create needs --repo URL");
      const forge = o.forge ? { kind: o.forge, apiUrl: o.forgeApi ?? "", tokenSecret: o.forgeTokenSecret ?? "", repository: o.forgeRepo ?? "" } : undefined;
      const { project, webhookSecret } = await client.projects.createProject({
        name,
        repoUrl: o.repo,
        pipelinePath: o.pipeline ?? "",
        defaultBranch: o.branch ?? "",
        branches: globs(o.branches),
        tags: globs(o.tags),
        forge,
      });
      console.log(describeProject(project!, url));
      console.log(`webhook secret: ${webhookSecret}   (shown only now; give it to the forge with the webhook URL)`);
      return 0;
    }
    case "get": {
      const { project } = await client.projects.getProject({ name });
      console.log(describeProject(project!, url));
      return 0;
    }
    case "delete":
      await client.projects.deleteProject({ name });
      console.log(`project ${name} deleted`);
      return 0;
    case "rotate-secret": {
      const { webhookSecret } = await client.projects.rotateWebhookSecret({ name });
      console.log(`webhook secret: ${webhookSecret}   (shown only now; the old one no longer works)`);
      return 0;
    }
    case "approve-fork": {
      const [, , number, sha] = rest;
      if (!number || !/^\d+$/.test(number) || !sha) throw new UsageError("project approve-fork NAME PULL_REQUEST SHA");
      const { run } = await client.projects.approveFork({ name, pullRequest: BigInt(number), sha });
      console.log(`pull request ${number} at ${sha.slice(0, 12)} approved; run ${run!.id} (#${run!.source?.number}) queued with secrets`);
      return 0;
    }
    case "run": {
      const { run } = await client.projects.runProject({ name, branch: o.branch ?? "", sha: o.sha ?? "" });
      console.log(`run ${run!.id} (#${run!.source?.number}) of project ${name} at ${run!.source?.sha.slice(0, 12)} queued`);
      return 0;
    }
    default:
      throw new UsageError();
  }
}

async function scheduleCommand(client: OttoClient, rest: string[], o: Record<string, string | undefined>): Promise<number> {
  const [verb, arg] = rest;
  switch (verb) {
    case "create": {
      if (!arg || !o.cron) throw new UsageError('schedule create PROJECT --cron "MIN HOUR DOM MON DOW" [--branch B]');
      const { schedule } = await client.projects.createSchedule({ project: arg, cron: o.cron, branch: o.branch ?? "" });
      console.log(`schedule ${schedule!.id}: project ${schedule!.project}, "${schedule!.cron}" (UTC), branch ${schedule!.branch || "(default)"}`);
      return 0;
    }
    case "list": {
      const { schedules } = await client.projects.listSchedules({ project: arg ?? "" });
      for (const s of schedules) console.log(`${s.id}  ${s.project}  "${s.cron}"  ${s.branch || "(default branch)"}`);
      return 0;
    }
    case "delete":
      if (!arg) throw new UsageError();
      await client.projects.deleteSchedule({ id: arg });
      console.log(`schedule ${arg} deleted`);
      return 0;
    default:
      throw new UsageError();
  }
}

function describeProject(p: Project, url: string): string {
  const lines = [
    `project ${p.name}`,
    `  repository:  ${p.repoUrl}`,
    `  pipeline:    ${p.pipelinePath} (default branch ${p.defaultBranch})`,
    `  branches:    ${p.branches.length ? p.branches.join(", ") : "all"}; tags: ${p.tags.length ? p.tags.join(", ") : "none"}`,
    `  forge:       ${p.forge ? `${p.forge.kind} ${p.forge.apiUrl} (${p.forge.repository}), token from secret ${p.forge.tokenSecret || "(none: no statuses)"}` : "none"}`,
    `  webhook URL: ${url.replace(/\/+$/, "")}${p.webhookPath}`,
    `  runs:        ${p.lastRunNumber}`,
  ];
  return lines.join("\n");
}

// One line per event: when, the run, its pipeline (and project), what
// changed and how.
function describeEvent(event: RunEvent, run: RunSummary): string {
  const when = event.time ? timestampDate(event.time).toISOString() : "";
  const what = event.job ? `${event.job}${event.step ? `/${event.step}` : ""}` : "run";
  const exit = event.exitCode === undefined ? "" : ` exit ${event.exitCode}`;
  return `${when}  ${run.id}  ${run.name}${run.project ? ` (${run.project})` : ""}  ${what} ${runStateName(event.state)}${exit}${event.message ? `: ${event.message}` : ""}`;
}

const kindNames: Record<number, string> = { [TokenKind.API]: "api", [TokenKind.JOIN]: "join", [TokenKind.AGENT]: "agent" };

// A file `npm start` made in this directory, if there is one.
// --state NAME (any case); absent: any state.
function stateOption(text: string | undefined): RunState {
  if (text === undefined) return RunState.UNSPECIFIED;
  const state = RunState[text.toUpperCase() as keyof typeof RunState];
  if (typeof state !== "number" || state === RunState.UNSPECIFIED) {
    throw new UsageError(`--state takes a run state (queued, running, succeeded, failed, canceled, waiting, skipped), not "${text}"`);
  }
  return state;
}

function localFile(name: string): string | undefined {
  return existsSync(name) ? name : undefined;
}

async function readToken(file: string | undefined): Promise<string | undefined> {
  return file ? (await readFile(file, "utf8")).trim() : undefined;
}

// The bytes come straight from storage, through the presigned URL.
// Writes the bytes at `url` to `out`; answers their SHA-256 (hex).
async function download(url: string, out: NodeJS.WritableStream): Promise<string> {
  const response = await fetch(url);
  if (!response.ok || !response.body) throw new Error(`storage answered HTTP ${response.status} for the artifact`);
  const hash = createHash("sha256");
  for await (const part of response.body) {
    hash.update(part);
    if (!out.write(part)) await new Promise((resolve) => out.once("drain", resolve));
  }
  return hash.digest("hex");
}

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const part of process.stdin) parts.push(part as Buffer);
  return Buffer.concat(parts).toString("utf8");
}

class UsageError extends Error {}

// Runs the CLI as the `otto` command: prints what went wrong and exits with
// the command's code.
export function runOttoCommand(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (err) => {
      if (err instanceof UsageError) console.error(err.message ? `otto: ${err.message}\n${usage}` : usage);
      else if (err instanceof ConnectError) console.error(`otto: ${err.rawMessage} [${Code[err.code]}]`);
      else console.error(`otto: ${(err as Error).message}`);
      process.exit(2);
    },
  );
}

if (import.meta.main) runOttoCommand(process.argv.slice(2));
