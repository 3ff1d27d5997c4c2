// Step tokens: signed by a coordinator, checked with the CA alone, good for
// their run, job and attempt until they expire; neither a task token nor a
// token of another process passes for one; without TLS their claims are
// written unsigned, for an Otto that authenticates nothing.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureLocalCa } from "@otto/kit/local-ca";
import { createStepTokenSigner, StepTokenVerifier, unsignedStepClaims } from "@otto/kit/step-token";
import { createTaskTokenSigner, TaskTokenVerifier } from "@otto/kit/task-token";
import type { TlsFiles } from "@otto/kit/transport-security";

describe("step tokens", () => {
  let dir: string;
  let coordinator: TlsFiles;
  let gateway: TlsFiles;
  const claims = { runId: "5d0c2a9e-1111-4a4a-8b8b-000000000001", job: "gen", attempt: 2 };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "otto-step-token-"));
    const ca = await ensureLocalCa(dir);
    const read = async (files: { cert: string; key: string; ca: string }) => ({
      cert: await readFile(files.cert),
      key: await readFile(files.key),
      ca: await readFile(files.ca),
    });
    coordinator = await read(await ca.issue("coordinator-1", "coordinator"));
    gateway = await read(await ca.issue("gateway", "gateway"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("a coordinator's token stands for its run, job and attempt until it expires", () => {
    const verifier = new StepTokenVerifier(coordinator.ca);
    const token = createStepTokenSigner(coordinator)(claims, 60);
    assert.match(token, /^otto_step_[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.deepEqual(verifier.verify(token), { kind: "step", ...claims });
    assert.equal(verifier.verify(createStepTokenSigner(coordinator)(claims, -1)), undefined, "expired");
    const [payload, signature, certificate] = token.slice("otto_step_".length).split(".");
    const changed = Buffer.from(JSON.stringify({ k: "step", r: claims.runId, j: "deploy", n: 2, e: Math.floor(Date.now() / 1000) + 60 })).toString("base64url");
    assert.equal(verifier.verify(`otto_step_${changed}.${signature}.${certificate}`), undefined, "claims changed after signing");
    assert.equal(verifier.verify(`otto_step_${payload}`), undefined, "unsigned");
  });

  it("neither another process's signature nor a task token passes for a step token, nor the other way round", () => {
    const steps = new StepTokenVerifier(coordinator.ca);
    const tasks = new TaskTokenVerifier(coordinator.ca);
    assert.equal(steps.verify(createStepTokenSigner(gateway)(claims, 60)), undefined, "signed by the gateway");
    const task = createTaskTokenSigner(coordinator)({ agentId: "agent-1", ...claims }, 60);
    assert.equal(tasks.verify(task)?.kind, "task");
    assert.equal(steps.verify(task.replace(/^otto_task_/, "otto_step_")), undefined);
    const step = createStepTokenSigner(coordinator)(claims, 60);
    assert.equal(tasks.verify(step.replace(/^otto_step_/, "otto_task_")), undefined);
  });

  it("without TLS the claims are written unsigned, and read unchecked from the Authorization header", () => {
    const token = createStepTokenSigner(undefined)(claims, 60);
    assert.doesNotMatch(token, /\./);
    assert.deepEqual(unsignedStepClaims(`Bearer ${token}`), claims);
    assert.deepEqual(unsignedStepClaims(`Bearer ${createStepTokenSigner(coordinator)(claims, 60)}`), claims);
    assert.equal(unsignedStepClaims(`Bearer ${createStepTokenSigner(undefined)(claims, -1)}`), undefined, "expired");
    assert.equal(unsignedStepClaims("Bearer otto_api_abc"), undefined);
    assert.equal(unsignedStepClaims(null), undefined);
    assert.equal(new StepTokenVerifier(coordinator.ca).verify(token), undefined, "never passes where tokens are checked");
  });
});
