import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { isFinal, readLogLines } from "@otto/sdk";
import { clockOf, logRowOf, type LogRow } from "./log-lines.ts";
import { formatDuration, stateClass, stateName } from "./format.ts";
import { JobArtifacts } from "./job-artifacts.tsx";
import { Link } from "./link.tsx";
import { jobPath, runPath } from "./route.ts";
import { isAbort } from "./session.ts";
import { useSession } from "./session-context.ts";
import { useWatchedRun } from "./watch-run.ts";

// How much of a log is read at first (its end), around a linked line, and
// per click on "earlier lines".
const tailLines = 1000;
const aroundLine = 200;
const earlierLines = 1000;
const searchMatches = 500;

type Start = { tail: number } | { line: number };

export function LogPage(props: { runId: string; job: string; attempt: number; line: number }) {
  const { client, fail } = useSession();
  const watched = useWatchedRun(client, props.runId, fail);
  const job = watched.run?.jobs.find((j) => j.name === props.job);
  const [start, setStart] = useState<Start>(() => (props.line > 0 ? { line: Math.max(1, props.line - aroundLine) } : { tail: tailLines }));
  const [rows, setRows] = useState<LogRow[]>([]);
  const [following, setFollowing] = useState(true);
  const [error, setError] = useState("");
  const stick = useRef(props.line === 0);
  const scrolledTo = useRef(0);

  useEffect(() => {
    const abort = new AbortController();
    let buffer: LogRow[] = [];
    let replace = true;
    let attempt = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      timer = undefined;
      const batch = buffer;
      const fresh = replace;
      buffer = [];
      replace = false;
      setRows((shown) => (fresh ? batch : [...shown, ...batch]));
    };
    setRows([]);
    setFollowing(true);
    setError("");
    (async () => {
      try {
        const lines = readLogLines(client, props.runId, props.job, { follow: true, attempt: props.attempt, ...start, signal: abort.signal });
        for await (const line of lines) {
          // A retry's attempt starts a log of its own.
          if (attempt !== 0 && line.attempt !== attempt) {
            buffer = [];
            replace = true;
          }
          attempt = line.attempt;
          buffer.push(logRowOf(line));
          timer ??= setTimeout(flush, 40);
        }
        clearTimeout(timer);
        flush();
        setFollowing(false);
      } catch (err) {
        if (abort.signal.aborted || isAbort(err)) return;
        clearTimeout(timer);
        flush();
        setFollowing(false);
        setError(fail(err));
      }
    })();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [client, props.runId, props.job, props.attempt, start]);

  // Following the end of the log while the reader is at the bottom.
  useEffect(() => {
    const onScroll = () => {
      stick.current = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
    };
    addEventListener("scroll", onScroll, { passive: true });
    return () => removeEventListener("scroll", onScroll);
  }, []);
  useLayoutEffect(() => {
    if (props.line > 0 && scrolledTo.current !== props.line) {
      const target = document.getElementById(`L${props.line}`);
      if (target) {
        target.scrollIntoView({ block: "center" });
        scrolledTo.current = props.line;
      }
      return;
    }
    if (stick.current) window.scrollTo(0, document.documentElement.scrollHeight);
  }, [rows, props.line]);

  const shownAttempt = rows[0]?.attempt ?? props.attempt;
  const first = rows[0]?.number ?? 1;
  const loadEarlier = async () => {
    if (loadingEarlier.current) return;
    loadingEarlier.current = true;
    const from = Math.max(1, first - earlierLines);
    const earlier: LogRow[] = [];
    try {
      for await (const line of readLogLines(client, props.runId, props.job, { attempt: shownAttempt, line: from, limit: first - from })) earlier.push(logRowOf(line));
      stick.current = false;
      setRows((shown) => (shown[0]?.number === first ? [...earlier.filter((row) => row.number < first), ...shown] : shown));
    } catch (err) {
      setError(fail(err));
    } finally {
      loadingEarlier.current = false;
    }
  };
  // Scrolling up to the first line shown reads the lines before it.
  const earlierButton = useRef<HTMLButtonElement>(null);
  const loadingEarlier = useRef(false);
  const latestLoadEarlier = useRef(loadEarlier);
  latestLoadEarlier.current = loadEarlier;
  const hasEarlier = first > 1 && rows.length > 0;
  useEffect(() => {
    const button = earlierButton.current;
    if (!hasEarlier || !button) return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) void latestLoadEarlier.current();
    });
    observer.observe(button);
    return () => observer.disconnect();
  }, [hasEarlier]);
  const jumpTo = (line: number) => {
    stick.current = false;
    scrolledTo.current = 0;
    if (!rows.some((row) => row.number === line)) setStart({ line: Math.max(1, line - aroundLine) });
  };

  return (
    <main class="log-page">
      <p class="crumbs">
        <Link href="/">Runs</Link> / <Link href={runPath(props.runId)}>{watched.run?.name || "run"}</Link> / job
      </p>
      <header class="page-header">
        <h1>
          {job && (
            <span class={stateClass(job.state)} data-testid="job-state">
              {stateName(job.state)}
            </span>
          )}{" "}
          <span class="job-name">{props.job}</span>
        </h1>
        {job && (
          <p class="job-facts">
            {job.startedAt && <span>{formatDuration(job.startedAt, job.finishedAt)}</span>}
            {job.agentId && <span> on {job.agentId}</span>}
            {job.attempt > 1 && (
              <span class="attempts">
                {" "}
                attempt:{" "}
                {Array.from({ length: job.attempt }, (_, i) => i + 1).map((n) => (
                  <Link href={jobPath(props.runId, props.job, n)} class={n === shownAttempt ? "current" : ""}>
                    {String(n)}
                  </Link>
                ))}
              </span>
            )}
          </p>
        )}
        <Search runId={props.runId} job={props.job} attempt={shownAttempt} onJump={jumpTo} />
      </header>
      {job && <JobArtifacts runId={props.runId} job={props.job} attempt={shownAttempt || job.attempt} final={isFinal(job.state)} />}
      {(error || watched.error) && (
        <p class="error" role="alert">
          {error || watched.error}
        </p>
      )}
      {hasEarlier && (
        <button type="button" class="earlier" ref={earlierButton} onClick={loadEarlier}>
          Earlier lines
        </button>
      )}
      <pre class="log" data-attempt={shownAttempt}>
        {rows.map((row, i) => (
          <LogLine key={row.number} row={row} target={row.number === props.line} showStep={i === 0 || rows[i - 1].step !== row.step} />
        ))}
      </pre>
      <p class="log-end">
        {following && (!job || !isFinal(job.state)) ? <span class="following">following…</span> : rows.length === 0 && !error ? "No output." : ""}
      </p>
    </main>
  );
}

// The line the address names is marked by a class: CSS's :target does not
// apply to a line that arrives after the page was opened.
function LogLine({ row, target, showStep }: { row: LogRow; target: boolean; showStep: boolean }) {
  return (
    <div class={`line${row.match ? " match" : ""}${target ? " target" : ""}`} id={`L${row.number}`}>
      <a class="ln" href={`#L${row.number}`}>
        {String(row.number)}
      </a>
      <span class="time" title={row.time}>
        {clockOf(row.time)}
      </span>
      <span class="step">{showStep ? row.step : ""}</span>
      <span class="text">
        {row.segments.map((segment) => (segment.classes ? <span class={segment.classes}>{segment.text}</span> : segment.text))}
      </span>
    </div>
  );
}

interface Found {
  number: number;
  row: LogRow;
  follows: boolean;
}

// The server's grep over the attempt's whole log; a match links to its line.
function Search(props: { runId: string; job: string; attempt: number; onJump: (line: number) => void }) {
  const { client, fail } = useSession();
  const [found, setFound] = useState<Found[] | undefined>(undefined);
  const [error, setError] = useState("");
  const search = async (event: Event) => {
    event.preventDefault();
    const grep = String(new FormData(event.currentTarget as HTMLFormElement).get("grep") ?? "");
    setError("");
    if (grep === "") return setFound(undefined);
    const results: Found[] = [];
    try {
      for await (const line of readLogLines(client, props.runId, props.job, { attempt: props.attempt, grep, ignoreCase: true, limit: searchMatches })) {
        results.push({ number: line.number, row: logRowOf(line), follows: line.follows });
      }
      setFound(results);
    } catch (err) {
      setError(fail(err));
    }
  };
  return (
    <section class="search">
      <form onSubmit={search} role="search">
        <input name="grep" type="search" placeholder="Search the log" aria-label="Search the log" />
        <button type="submit">Search</button>
        {found && (
          <button type="button" onClick={() => setFound(undefined)}>
            Clear
          </button>
        )}
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {found && (
        <div class="found">
          <p>{found.length === 0 ? "No line matches." : `${found.length} matching line${found.length === 1 ? "" : "s"}${found.length >= searchMatches ? " (the first ones)" : ""}:`}</p>
          <ol>
            {found.map((hit) => (
              <li>
                <a href={`#L${hit.number}`} onClick={() => props.onJump(hit.number)}>
                  {String(hit.number)}
                </a>{" "}
                <span class="text">{hit.row.segments.map((segment) => segment.text).join("")}</span>
              </li>
            ))}
          </ol>
        </div>
      )}
    </section>
  );
}
