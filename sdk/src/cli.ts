#!/usr/bin/env -S node --disable-warning=ExperimentalWarning
// otto: the command line for Otto, built on the SDK.
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { RunState } from "../../gen/otto/v1/run_pb.ts";
import { createOttoClient, defaultGatewayUrl } from "./client.ts";
import { describeRun, followRun } from "./follow-run.ts";
import { followLogs } from "./logs.ts";
import { isFinal, submit } from "./runs.ts";
import { runStateName } from "../../services/kit/src/run-state.ts";

const usage = `usage: otto [--url URL] COMMAND
  run FILE [--follow]     submit a pipeline file; --follow prints its logs live and waits
  runs                    list recent runs
  get RUN                 show a run, its jobs and steps
  logs RUN JOB [--follow] print a job's log
  cancel RUN              cancel a run
The gateway is --url, else OTTO_URL, else ${defaultGatewayUrl}.`;

export async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  let url = process.env.OTTO_URL || defaultGatewayUrl;
  const urlAt = args.indexOf("--url");
  if (urlAt >= 0) {
    url = args[urlAt + 1] ?? "";
    args.splice(urlAt, 2);
  }
  const follow = args.includes("--follow") || args.includes("-f");
  const [command, ...rest] = args.filter((a) => a !== "--follow" && a !== "-f");
  const client = createOttoClient({ baseUrl: url });
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
      const { runs } = await client.runs.listRuns({ pageSize: 20 });
      for (const run of runs) {
        const when = run.createdAt ? new Date(Number(run.createdAt.seconds) * 1000).toISOString() : "";
        console.log(`${run.id}  ${runStateName(run.state).padEnd(9)}  ${when}  ${run.name}`);
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
      for await (const line of followLogs(client, rest[0], rest[1], { follow })) console.log(line);
      return 0;
    }
    case "cancel": {
      need(1);
      const { run } = await client.runs.cancelRun({ runId: rest[0] });
      const note = isFinal(run!.state) ? (run!.state === RunState.CANCELED ? "" : " (already finished)") : " (cancel requested)";
      console.log(`run ${run!.id}: ${runStateName(run!.state)}${note}`);
      return 0;
    }
    default:
      throw new UsageError();
  }
}

class UsageError extends Error {}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      if (err instanceof UsageError) console.error(usage);
      else if (err instanceof ConnectError) console.error(`otto: ${err.rawMessage} [${Code[err.code]}]`);
      else console.error(`otto: ${(err as Error).message}`);
      process.exit(2);
    },
  );
}
