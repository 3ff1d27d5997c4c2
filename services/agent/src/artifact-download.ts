import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { lstat, mkdir, open } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ArtifactSource, NeededArtifact } from "@otto/gen/v1/artifact_service_pb";
import { artifactNameProblem } from "@otto/contracts/artifact-name";

// The owner the files get: the steps' user, when the agent is root and
// sandboxes its steps (otherwise the agent's own user is theirs).
export interface FileOwner {
  uid: number;
  gid: number;
}

export interface DownloadOptions {
  // The task's own run: a source of another run (a job a rerun reused) is named with its run.
  runId: string;
  sources: readonly ArtifactSource[];
  // A need's artifacts, with a URL for each (ArtifactStoreService.ListNeededArtifacts).
  list: (source: ArtifactSource) => Promise<NeededArtifact[]>;
  workspace: string;
  owner?: FileOwner;
  signal: AbortSignal;
  log: (text: string) => void;
  // Tries of a need's downloads while storage fails, and the first wait between them (doubling).
  tries?: number;
  firstWaitMs?: number;
}

// A need's artifacts could not be had: the job fails with this message.
export class ArtifactDownloadError extends Error {}

// Puts the artifacts of the jobs a task needs into its workspace, at their
// paths, before its first step, each straight from storage through its
// presigned URL, and says in the log what came from which job. A storage
// that cannot be reached, answers 5xx, refuses an expired URL or cuts a
// download short is asked again, with fresh URLs, a few times; anything else
// fails the job (ArtifactDownloadError), except the attempt's own end
// (failed_precondition), which the caller treats as the task taken away.
export async function downloadNeededArtifacts(options: DownloadOptions): Promise<void> {
  const cameFrom = new Map<string, string>();
  for (const source of options.sources) {
    const from = source.runId === options.runId ? source.job : `${source.job} of run ${source.runId} (attempt ${source.attempt})`;
    const { files, bytes } = await downloadFrom(source, from, cameFrom, options);
    options.log(`artifacts from ${from}: ${files} file${files === 1 ? "" : "s"}, ${formatBytes(bytes)}`);
  }
}

async function downloadFrom(
  source: ArtifactSource,
  from: string,
  cameFrom: Map<string, string>,
  options: DownloadOptions,
): Promise<{ files: number; bytes: number }> {
  const tries = options.tries ?? 5;
  const done = new Set<string>();
  let bytes = 0;
  for (let attempt = 1, waitMs = options.firstWaitMs ?? 500; ; attempt++, waitMs *= 2) {
    let current = "";
    try {
      const artifacts = await options.list(source);
      for (const { artifact, url } of artifacts) {
        const name = artifact?.name ?? "";
        if (done.has(name)) continue;
        current = name;
        const problem = artifactNameProblem(name);
        if (problem) throw new ArtifactDownloadError(`artifact of ${from} refused: ${problem}`);
        const size = Number(artifact!.size);
        const sha256 = await fetchInto(url, await fileFor(options.workspace, name, options.owner), size, options);
        // Storage sent what it holds; bytes that differ from those uploaded
        // were changed or damaged there, and asking again would not mend them.
        if (artifact!.sha256 && sha256 !== artifact!.sha256) {
          throw new ArtifactDownloadError(
            `artifact ${name} of ${from} is not what its job uploaded: its SHA-256 is ${sha256}, its upload's was ${artifact!.sha256}; the stored object was changed or damaged`,
          );
        }
        const earlier = cameFrom.get(name);
        if (earlier) options.log(`artifact ${name} from ${from} replaces the one from ${earlier}`);
        cameFrom.set(name, from);
        done.add(name);
        bytes += size;
      }
      return { files: done.size, bytes };
    } catch (err) {
      if (options.signal.aborted || err instanceof ArtifactDownloadError) throw err;
      if (err instanceof ConnectError) {
        if (err.code === Code.FailedPrecondition) throw err;
        throw new ArtifactDownloadError(`could not get the artifacts of ${from}: ${err.rawMessage}`);
      }
      const what = current ? `artifact ${current} of ${from}` : `the artifacts of ${from}`;
      if (!(err instanceof StorageTrouble)) throw new ArtifactDownloadError(`could not download ${what}: ${(err as Error).message}`);
      if (attempt >= tries) throw new ArtifactDownloadError(`could not download ${what} in ${tries} tries: ${err.message}`);
      await delay(waitMs, undefined, { signal: options.signal });
    }
  }
}

// What asking again (with a fresh URL) may mend.
class StorageTrouble extends Error {}

// Answers the SHA-256 (hex) of the bytes written.
async function fetchInto(url: string, file: string, size: number, { signal, owner }: DownloadOptions): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (err) {
    if (signal.aborted) throw err;
    throw new StorageTrouble(`storage could not be reached: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    const status = `storage answered HTTP ${response.status}`;
    // 403: a URL that expired (or a clock off) is presigned anew.
    if (response.status >= 500 || response.status === 403) throw new StorageTrouble(status);
    throw new Error(status);
  }
  // Written without following a link, though the workspace is fresh and no
  // step has run yet: nothing the job does can send these bytes elsewhere.
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  let written = 0;
  const hash = createHash("sha256");
  try {
    if (owner) await handle.chown(owner.uid, owner.gid);
    for await (const chunk of response.body) {
      await handle.write(chunk);
      hash.update(chunk);
      written += chunk.length;
    }
  } catch (err) {
    if (signal.aborted) throw err;
    throw new StorageTrouble(`the download broke off: ${(err as Error).message}`);
  } finally {
    await handle.close();
  }
  if (written !== size) throw new StorageTrouble(`storage sent ${written} bytes of ${size}`);
  return hash.digest("hex");
}

// The file's place in the workspace, its directories made as needed (owned
// by the steps' user), never through a symbolic link.
async function fileFor(workspace: string, name: string, owner: FileOwner | undefined): Promise<string> {
  const parts = name.split("/");
  let directory = workspace;
  for (const [index, part] of parts.slice(0, -1).entries()) {
    directory = join(directory, part);
    try {
      await mkdir(directory, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      if (!(await lstat(directory)).isDirectory()) {
        throw new ArtifactDownloadError(`artifact ${name} cannot be placed: ${parts.slice(0, index + 1).join("/")} is not a directory`);
      }
      continue;
    }
    if (owner) await chownPath(directory, owner);
  }
  return join(directory, parts.at(-1)!);
}

async function chownPath(path: string, owner: FileOwner): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.chown(owner.uid, owner.gid);
  } finally {
    await handle.close();
  }
}

// "8 bytes", "1.2 kB", "1.2 MB", "3.4 GB".
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} byte${bytes === 1 ? "" : "s"}`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 999.95 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
