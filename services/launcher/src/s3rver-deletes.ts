import { rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import FilesystemStore from "s3rver/lib/stores/filesystem.js";

// s3rver deletes the objects of one DeleteObjects request all at once, and
// each delete then removes the directories it emptied after reading them
// first: two deletes in one directory race (one reads a directory the other
// just removed) and the request fails with 500. Here an emptied directory is
// removed by rmdir alone, which refuses a directory that is not empty, and a
// directory gone already or filled again ends the climb. The key's first
// level (logs/, artifacts/) stays: every run's objects go under it, and a
// write may be making its directory there right now.
export function tolerateConcurrentDeletes(): void {
  FilesystemStore.prototype.deleteObject = async function (this: FilesystemStore, bucket: string, key: string): Promise<void> {
    await Promise.all(
      ["object", "object.md5", "metadata.json"].map((resource) =>
        unlink(this.getResourcePath(bucket, key, resource)).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== "ENOENT") throw err;
        }),
      ),
    );
    const parts = key.split("/").slice(0, -1);
    for (; parts.length > 1; parts.pop()) {
      try {
        await rmdir(join(this.getBucketPath(bucket), ...parts));
      } catch (err) {
        if (["ENOENT", "ENOTEMPTY", "EEXIST"].includes((err as NodeJS.ErrnoException).code ?? "")) return;
        throw err;
      }
    }
  };
}
