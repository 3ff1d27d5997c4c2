import { readFile } from "node:fs/promises";

// The most memory a process has held so far (VmHWM), in whole MB.
export async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!kb) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Math.round(Number(kb[1]) / 1024);
}
