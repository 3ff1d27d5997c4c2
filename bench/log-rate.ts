import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import pg from "pg";
import { pipeline, readLogLines, submit, waitForRun, RunState, type OttoClient } from "@otto/sdk";
import type { ChildInfo } from "@otto/launcher/supervisor";

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
  // What Postgres and S3 keep of it once archived: the compressed text and
  // the index (segments) beside it; and that over the output.
  log_stored_mb: number;
  log_stored_ratio: number;
  log_seconds: number;
  // From the log's close to its archive in S3 (in the background).
  log_archive_s: number;
  // How long after being printed a follower that greps the running log got
  // its matching lines (median and most).
  log_follow_lag_ms_p50: number;
  log_follow_lag_ms_max: number;
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
  const following = followLag(client, run.id);
  const db = new pg.Client({ connectionString: options.databaseUrl });
  await db.connect();
  try {
    const size = await closedLogSize(db, run.id);
    const closed = Date.now();
    // Readable: its last line comes back from the gateway.
    let tail = "";
    for await (const chunk of client.logs.readLog({ runId: run.id, job: "print", attempt: 1, offset: BigInt(Math.max(0, size - 4096)) })) tail += chunk.text;
    const ended = Date.now();
    if (!tail.includes(` | ${lines}\n`)) throw new Error(`the log's tail lacks its last line: ${tail.slice(-300)}`);
    const final = await waitForRun(client, run.id);
    if (final.state !== RunState.SUCCEEDED) throw new Error(`the log workload's run ended ${final.state}: ${final.jobs[0]?.message}`);
    const stored = await archivedSize(db, run.id);
    const lags = (await following).toSorted((a, b) => a - b);
    const firstByte = Number(BigInt((await readFile(marker, "utf8")).trim()) / 1_000_000n);
    const seconds = (ended - firstByte) / 1000;
    const outputBytes = seqBytes(lines);
    const peak = async (pattern: RegExp) => Math.max(...(await Promise.all(watched.filter((p) => pattern.test(p.name)).map((p) => peakRssMb(p.pid!)))));
    return {
      log_mb_per_s: round(outputBytes / 1e6 / seconds),
      log_output_mb: round(outputBytes / 1e6),
      log_stored_mb: round(stored.bytes / 1e6),
      log_stored_ratio: Math.round((stored.bytes / outputBytes) * 1000) / 1000,
      log_seconds: round(seconds),
      log_archive_s: round((stored.at - closed) / 1000),
      log_follow_lag_ms_p50: lags[Math.floor(lags.length / 2)] ?? -1,
      log_follow_lag_ms_max: lags.at(-1) ?? -1,
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

// Once the log is in S3: its object's bytes and its index's.
async function archivedSize(db: pg.Client, runId: string): Promise<{ bytes: number; at: number }> {
  for (const deadline = Date.now() + 600_000; Date.now() < deadline; ) {
    const { rows } = await db.query(
      `SELECT l.object_key <> '' AS archived, sum(c.zstd_bytes + octet_length(c.segments) + cardinality(c.steps) * 8)::bigint AS bytes
       FROM objects.logs l JOIN objects.log_chunks c USING (run_id, job, attempt) WHERE l.run_id = $1 GROUP BY l.object_key`,
      [runId],
    );
    if (rows[0]?.archived) return { bytes: Number(rows[0].bytes), at: Date.now() };
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the log workload's log was not archived within 10 minutes");
}

// A follower of the running log that greps it for lines 1000000, 2000000,
// ...: how long after each was printed (its time) it arrived.
async function followLag(client: OttoClient, runId: string): Promise<number[]> {
  const lags: number[] = [];
  for await (const line of readLogLines(client, runId, "print", { follow: true, attempt: 1, grep: "000000" })) {
    const printed = Date.parse(line.text.slice(0, line.text.indexOf(" ")));
    if (line.match && /\| \d+000000$/.test(line.text)) lags.push(Date.now() - printed);
  }
  return lags;
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
