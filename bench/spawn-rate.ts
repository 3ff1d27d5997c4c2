import { spawn } from "node:child_process";

// The most any agent host could start: a plain Node loop starting
// `/bin/sh -e -c true`, `concurrency` at a time, `total` in all; shells
// started (and ended) per second.
export async function spawnPerSecond(total = 400, concurrency = 4): Promise<number> {
  let next = 0;
  const loop = async () => {
    while (next < total) {
      next++;
      await new Promise<void>((resolve, reject) => {
        const child = spawn("/bin/sh", ["-e", "-c", "true"], { stdio: "ignore" });
        child.once("error", reject);
        child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`sh exited ${code}`))));
      });
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  return total / ((performance.now() - t0) / 1000);
}
