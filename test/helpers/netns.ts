// A second "machine" on this one: a Linux network namespace joined to the
// host by a veth pair, with an address from 198.18.0.0/15 on each end. A
// process started in it reaches the host only at `hostAddress`.
import { spawnSync } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";

export interface Netns {
  name: string;
  hostInterface: string;
  nsInterface: string;
  hostAddress: string;
  nsAddress: string;
  // The command prefix that runs a program inside the namespace.
  exec: string[];
  cut(): void;
  restore(): void;
  remove(): void;
}

function ip(...args: string[]): { ok: boolean; output: string } {
  const result = spawnSync("ip", args, { encoding: "utf8" });
  return { ok: result.status === 0, output: `${result.stdout ?? ""}${result.stderr ?? ""}${result.error?.message ?? ""}`.trim() };
}

function must(...args: string[]): void {
  const result = ip(...args);
  if (!result.ok) throw new Error(`ip ${args.join(" ")}: ${result.output}`);
}

// The namespace, or why this machine cannot make one (not root, no `ip`,
// namespaces not permitted).
export function createNetns(): Netns | string {
  if (process.getuid?.() !== 0) return "network namespaces need root";
  const suffix = randomBytes(3).toString("hex");
  const name = `otto-host-${suffix}`;
  const made = ip("netns", "add", name);
  if (!made.ok) return `this machine does not permit network namespaces (ip netns add: ${made.output})`;
  const hostInterface = `ovh${suffix}`;
  const nsInterface = `ovn${suffix}`;
  // A /30 of its own in 198.18.0.0/15, so that a namespace left over by a
  // killed run never collides with this one.
  const base = randomInt(0, 128 * 256) * 4;
  const address = (offset: number) => `198.${18 + ((base + offset) >> 16)}.${((base + offset) >> 8) & 255}.${(base + offset) & 255}`;
  const hostAddress = address(1);
  const nsAddress = address(2);
  const inside = (...args: string[]) => must("netns", "exec", name, "ip", ...args);
  const netns: Netns = {
    name,
    hostInterface,
    nsInterface,
    hostAddress,
    nsAddress,
    exec: ["ip", "netns", "exec", name],
    cut: () => must("link", "set", hostInterface, "down"),
    restore: () => must("link", "set", hostInterface, "up"),
    remove: () => {
      ip("link", "del", hostInterface);
      ip("netns", "del", name);
    },
  };
  try {
    must("link", "add", hostInterface, "type", "veth", "peer", "name", nsInterface);
    must("link", "set", nsInterface, "netns", name);
    must("addr", "add", `${hostAddress}/30`, "dev", hostInterface);
    must("link", "set", hostInterface, "up");
    inside("addr", "add", `${nsAddress}/30`, "dev", nsInterface);
    inside("link", "set", nsInterface, "up");
    inside("link", "set", "lo", "up");
  } catch (err) {
    netns.remove();
    throw err;
  }
  return netns;
}
