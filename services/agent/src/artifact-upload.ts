import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { realpath, stat } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { join, sep } from "node:path";
import type { CallOptions } from "@connectrpc/connect";
import { ArtifactStoreService } from "@otto/gen/v1/artifact_service_pb";
import type { Task } from "@otto/gen/v1/agent_service_pb";
import type { ServiceCaller } from "@otto/kit/service-caller";

// Uploads the job's artifacts from its workspace, each straight to object
// storage through a presigned URL for that one object. Returns what could
// not be uploaded, and why: a missing file, a directory, or a path that
// leads (through a symbolic link) out of the workspace.
export async function uploadArtifacts(options: {
  task: Task;
  workspace: string;
  peers: ServiceCaller;
  asTask: CallOptions;
  log: (text: string) => void;
}): Promise<string[]> {
  const { task, peers, asTask } = options;
  const root = await realpath(options.workspace);
  const problems: string[] = [];
  for (const name of task.artifacts) {
    let file: string;
    try {
      file = await realpath(join(root, name));
    } catch {
      problems.push(`artifact ${name} was not produced`);
      continue;
    }
    if (!file.startsWith(root + sep)) {
      problems.push(`artifact ${name} leads outside the job's workspace; not uploaded`);
      continue;
    }
    const info = await stat(file);
    if (!info.isFile()) {
      problems.push(`artifact ${name} is not a file`);
      continue;
    }
    const ref = { runId: task.runId, job: task.job, attempt: task.attempt, name };
    const { url } = await peers.call("objects", ArtifactStoreService, (c) => c.createArtifactUpload({ ...ref, size: BigInt(info.size) }, asTask), {
      idempotent: true,
      retryForMs: 10_000,
    });
    const sha256 = await putFileRetrying(url, file, info.size);
    const { artifact } = await peers.call("objects", ArtifactStoreService, (c) => c.completeArtifactUpload({ ...ref, sha256 }, asTask), {
      idempotent: true,
      retryForMs: 10_000,
    });
    options.log(`artifact ${name} stored (${artifact!.size} bytes)`);
  }
  return problems;
}

// Storage that cannot be reached, or answers 5xx, delays an upload but does
// not fail it: the PUT (of the same bytes to the same key) is tried again,
// waiting longer each time, for as long as the presigned URL lasts (at
// least 15 minutes).
async function putFileRetrying(url: string, file: string, size: number): Promise<string> {
  const giveUpAt = Date.now() + 10 * 60_000;
  for (let waitMs = 250; ; waitMs = Math.min(waitMs * 2, 10_000)) {
    try {
      return await putFile(url, file, size);
    } catch (err) {
      if (!(err instanceof StorageUnavailable) || Date.now() + waitMs > giveUpAt) throw err;
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

class StorageUnavailable extends Error {}

// A PUT with a Content-Length, as S3 requires of presigned uploads; answers
// the SHA-256 (hex) of the bytes it sent.
function putFile(url: string, file: string, size: number): Promise<string> {
  const target = new URL(url);
  const transport = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(target, { method: "PUT", headers: { "content-length": String(size) } }, (res) => {
      res.resume();
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) resolve(hash.digest("hex"));
        else if (status >= 500) reject(new StorageUnavailable(`storage could not take the upload: HTTP ${status}`));
        else reject(new Error(`storage refused the upload: HTTP ${status}`));
      });
    });
    req.on("error", (err) => reject(new StorageUnavailable(`storage could not be reached: ${err.message}`)));
    const hash = createHash("sha256");
    createReadStream(file)
      .on("error", reject)
      .on("data", (chunk) => hash.update(chunk))
      .pipe(req);
  });
}
