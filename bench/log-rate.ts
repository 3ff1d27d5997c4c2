import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { pipeline, submit, waitForRun, RunState, type OttoClient } from "../sdk/src/index.ts";
import type { ChildInfo } from "../services/launcher/src/supervisor.ts";

export interface LogRateOptions {
  client: OttoClient;
  databaseUrl: string;
  // A directory the (sandboxed) step may write, at the same path.
  markers: string;
  processes: () => ChildInfo[];
  lines: number;
}

export interface LogRate {
  log_mb_per_s: number;
  log_output_mb: number;
  log_stored_mb: number;
  log_seconds: number;
  // The most each kind of process held during the workload (the agents':
  // the one that ran the step, which is the largest).
  log_peak_rss_mb_agent: number;
  log_peak_rss_mb_objects: number;
  log_peak_rss_mb_gateway: number;
}

// One step printing `seq 1 lines`: its output's megabytes per second, from
// the step's first byte to its log being closed and its last line readable.
export async function measureLogRate(options: LogRateOptions): Promise<LogRate> {
  const { client, lines } = options;
  const watched = options.processes().filter((p) => p.pid !== undefined && /^(agent-\d+|objects|gateway)$/.test(p.name));
  for (const p of watched) await resetPeak(p.pid!);
  const marker = join(options.markers, "log-first-byte");
  const run = await submit(client, pipeline("logs").job("print", { steps: [{ name: "print", run: `date +%s%N > ${marker}; seq 1 ${lines}` }] }).build());
  const db = new pg.Client({ connectionString: options.databaseUrl });
  await db.connect();
  try {
    const size = await closedLogSize(db, run.id);
    // Readable: its last line comes back from the gateway.
    let tail = "";
    for await (const chunk of client.logs.readLog({ runId: run.id, job: "print", attempt: 1, offset: BigInt(Math.max(0, size - 4096)) })) tail += chunk.text;
    const ended = Date.now();
    if (!tail.includes(` | ${lines}\n`)) throw new Error(`the log's tail lacks its last line: ${tail.slice(-300)}`);
    const final = await waitForRun(client, run.id);
    if (final.state !== RunState.SUCCEEDED) throw new Error(`the log workload's run ended ${final.state}: ${final.jobs[0]?.message}`);
    const firstByte = Number(BigInt((await readFile(marker, "utf8")).trim()) / 1_000_000n);
    const seconds = (ended - firstByte) / 1000;
    const outputBytes = seqBytes(lines);
    const peak = async (pattern: RegExp) => Math.max(...(await Promise.all(watched.filter((p) => pattern.test(p.name)).map((p) => peakRssMb(p.pid!)))));
    return {
      log_mb_per_s: round(outputBytes / 1e6 / seconds),
      log_output_mb: round(outputBytes / 1e6),
      log_stored_mb: round(size / 1e6),
      log_seconds: round(seconds),
      log_peak_rss_mb_agent: await peak(/^agent-/),
      log_peak_rss_mb_objects: await peak(/^objects$/),
      log_peak_rss_mb_gateway: await peak(/^gateway$/),
    };
  } finally {
    await db.end();
  }
}

async function closedLogSize(db: pg.Client, runId: string): Promise<number> {
  for (const deadline = Date.now() + 600_000; Date.now() < deadline; ) {
    const { rows } = await db.query("SELECT size FROM objects.logs WHERE run_id = $1 AND state = 'closed'", [runId]);
    if (rows.length > 0) return Number(rows[0].size);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the log workload's log was not closed within 10 minutes");
}

// Bytes `seq 1 n` prints.
function seqBytes(n: number): number {
  let bytes = 0;
  for (let digits = 1, from = 1; from <= n; digits++, from *= 10) bytes += (Math.min(n, from * 10 - 1) - from + 1) * (digits + 1);
  return bytes;
}

// Writing 5 to clear_refs starts the process's peak RSS (VmHWM) afresh.
async function resetPeak(pid: number): Promise<void> {
  await writeFile(`/proc/${pid}/clear_refs`, "5").catch(() => {});
}

async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Math.round(Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0) / 1024);
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
