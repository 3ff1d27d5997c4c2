import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Task } from "@otto/gen/v1/agent_service_pb";
import { sandboxPaths, type SandboxSettings } from "./step-sandbox.ts";

// How a job's steps reach Otto themselves (`otto jobs add`): the public URL
// the agent uses (OTTO_URL), their task's step token (OTTO_TOKEN), which
// adds jobs to their run while the attempt runs and does nothing else, and
// the CA the agent trusts (OTTO_CA_FILE; empty when it trusts the system's,
// or Otto runs without TLS).
export interface StepAccess {
  url: string;
  // The CA file as the steps see it ("" for none).
  caFile: string;
}

// Where a step finds the CA, and what the sandbox exposes for it: a copy in
// the agent's work directory, readable by the steps' user, bound read-only
// at /opt/otto/ca.pem in a sandboxed step (the directory around it is the
// agent's own, closed to others).
export function stepCaPlaces(workRoot: string, sandboxed: boolean): { host: string; step: string; expose: SandboxSettings["expose"] } {
  const host = join(workRoot, "step-ca.pem");
  const step = sandboxed ? join(sandboxPaths.otto, "ca.pem") : host;
  return { host, step, expose: sandboxed ? [{ from: host, to: step }] : [] };
}

// Writes the copy, before the first step is started (the sandbox binds it).
export function writeStepCa(host: string, ca: Buffer): void {
  writeFileSync(host, ca);
  chmodSync(host, 0o644);
}

export function stepAccessEnv(task: Task, access: StepAccess | undefined): Record<string, string> {
  if (!access || !task.stepToken) return {};
  return { OTTO_URL: access.url, OTTO_TOKEN: task.stepToken, OTTO_CA_FILE: access.caFile };
}
