// deploy/kubernetes/, checked without a cluster: every object against the
// Kubernetes OpenAPI schemas (kubernetes-models), every field name against
// the typed models (an unknown or misspelt field fails to type-check), and
// the wiring between them: Otto's processes and their entry files, probes,
// Services, the coordinators' disruption budget, Secrets, and variables Otto
// actually reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import YAML from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { Service } from "kubernetes-models/v1/Service";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";

const root = join(import.meta.dirname, "..");
const dir = join(root, "deploy/kubernetes");
const models: Record<string, { model: new (data: any) => { validate(): void }; module: string; type: string }> = {
  "apps/v1 Deployment": { model: Deployment, module: "kubernetes-models/apps/v1/Deployment", type: "IDeployment" },
  "v1 Service": { model: Service, module: "kubernetes-models/v1/Service", type: "IService" },
  "policy/v1 PodDisruptionBudget": { model: PodDisruptionBudget, module: "kubernetes-models/policy/v1/PodDisruptionBudget", type: "IPodDisruptionBudget" },
};
// What an operator provides (README, "Run Otto on Kubernetes").
const secrets = ["otto-database", "otto-s3", "otto-secrets-key", "otto-agent-join", ...["registry", "parser", "coordinator", "objects", "gateway"].map((s) => `otto-${s}-tls`)];

const kustomization = YAML.parse(await readFile(join(dir, "kustomization.yaml"), "utf8"));
const objects: any[] = [];
for (const file of kustomization.resources as string[]) {
  for (const doc of YAML.parseAllDocuments(await readFile(join(dir, file), "utf8"))) objects.push({ ...doc.toJS(), file });
}
const ofKind = (kind: string) => objects.filter((o) => o.kind === kind);
const deployments = ofKind("Deployment");
const containerOf = (deployment: any) => deployment.spec.template.spec.containers[0];

test("the kustomization lists every manifest, and every object is valid against the Kubernetes schemas", async () => {
  assert.equal(kustomization.kind, "Kustomization");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml").sort();
  assert.deepEqual([...kustomization.resources].sort(), files);
  for (const object of objects) {
    const { file, ...data } = object;
    const entry = models[`${data.apiVersion} ${data.kind}`];
    assert.ok(entry, `${file}: ${data.apiVersion} ${data.kind} is a kind this check knows`);
    assert.doesNotThrow(() => new entry.model(data).validate(), `${file}: ${data.kind} ${data.metadata?.name}`);
  }
});

test("every field name is one Kubernetes knows (the objects type-check against the typed models)", async () => {
  // Inside the repository (git-ignored), where kubernetes-models resolves.
  await mkdir(join(root, ".scratch"), { recursive: true });
  const scratch = await mkdtemp(join(root, ".scratch", "k8s-"));
  try {
    const imports = Object.values(models).map(({ module, type }) => `import type { ${type} } from "${module}";`);
    const consts = objects.map(({ file, ...data }, i) => `export const object${i}: ${models[`${data.apiVersion} ${data.kind}`].type} = ${JSON.stringify(data)};`);
    await writeFile(join(scratch, "manifests.ts"), [...imports, ...consts].join("\n") + "\n");
    const config = { compilerOptions: { strict: true, noEmit: true, module: "nodenext", moduleResolution: "nodenext", target: "es2022", types: [], skipLibCheck: true }, files: ["manifests.ts"] };
    await writeFile(join(scratch, "tsconfig.json"), JSON.stringify(config));
    const tsc = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", scratch], { encoding: "utf8" });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);

    // And the check would see a misspelt field.
    await writeFile(join(scratch, "manifests.ts"), `${imports[0]}\nexport const d: IDeployment = ${JSON.stringify({ ...deployments[0], file: undefined, spec: { ...deployments[0].spec, replica: 2 } })};\n`);
    const misspelt = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", scratch], { encoding: "utf8" });
    assert.notEqual(misspelt.status, 0);
    assert.match(misspelt.stdout, /'"?replica"?' does not exist/);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
});

test("every Otto process runs from its entry file, with probes on a port it declares and Prometheus told where", () => {
  const names = deployments.map((d) => d.metadata.name).sort();
  assert.deepEqual(names, ["otto-agent", "otto-coordinator", "otto-gateway", "otto-objects", "otto-parser", "otto-registry"]);
  for (const deployment of deployments) {
    const container = containerOf(deployment);
    const entry = container.args[0];
    assert.ok(existsSync(join(root, entry)), `${deployment.metadata.name} runs ${entry}, which exists`);
    const ports = new Map(container.ports.map((p: any) => [p.name, p.containerPort]));
    assert.equal(container.readinessProbe.httpGet.path, "/readyz");
    assert.equal(container.livenessProbe.httpGet.path, "/healthz");
    for (const probe of [container.readinessProbe, container.livenessProbe]) assert.ok(ports.has(probe.httpGet.port), `${deployment.metadata.name} probes a declared port`);
    const annotations = deployment.spec.template.metadata.annotations;
    assert.equal(annotations["prometheus.io/scrape"], "true");
    assert.equal(Number(annotations["prometheus.io/port"]), ports.get(container.readinessProbe.httpGet.port));
    assert.deepEqual(deployment.spec.selector.matchLabels, Object.fromEntries(Object.entries(deployment.spec.template.metadata.labels).filter(([k]) => k in deployment.spec.selector.matchLabels)));
  }
});

test("each Service selects one process's pods on a port they declare; the gateway's is reachable from outside", () => {
  for (const service of ofKind("Service")) {
    const selected = deployments.filter((d) => Object.entries(service.spec.selector).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
    assert.equal(selected.length, 1, `${service.metadata.name} selects one Deployment`);
    const declared = containerOf(selected[0]).ports.map((p: any) => p.name);
    for (const port of service.spec.ports) assert.ok(declared.includes(port.targetPort), `${service.metadata.name} targets ${port.targetPort}`);
  }
  assert.equal(ofKind("Service").find((s) => s.metadata.name === "otto-gateway").spec.type, "LoadBalancer");
});

test("at least two coordinators, kept available by a disruption budget", () => {
  const coordinators = deployments.find((d) => d.metadata.name === "otto-coordinator");
  assert.ok(coordinators.spec.replicas >= 2);
  const budget = ofKind("PodDisruptionBudget").find((b) => Object.entries(b.spec.selector.matchLabels).every(([k, v]) => coordinators.spec.template.metadata.labels[k] === v));
  assert.ok(budget, "a PodDisruptionBudget selects the coordinators");
  assert.ok(budget.spec.minAvailable >= 1);
});

test("Secrets are the documented ones, TLS in cert-manager's shape, and the agent gets only the gateway's CA", async () => {
  const readme = await readFile(join(root, "README.md"), "utf8");
  for (const deployment of deployments) {
    const spec = deployment.spec.template.spec;
    const container = containerOf(deployment);
    const named = [
      ...container.env.flatMap((e: any) => (e.valueFrom?.secretKeyRef ? [e.valueFrom.secretKeyRef.name] : [])),
      ...spec.volumes.flatMap((v: any) => (v.secret ? [v.secret.secretName] : [])),
    ];
    for (const name of named) {
      assert.ok(secrets.includes(name), `${deployment.metadata.name} uses the Secret ${name}`);
      assert.ok(readme.includes(name.replace(/-(registry|parser|coordinator|objects|gateway)-tls$/, "-<process>-tls")), `the README names ${name}`);
    }
    const tls = Object.fromEntries(container.env.filter((e: any) => /^OTTO_TLS_/.test(e.name)).map((e: any) => [e.name, e.value]));
    if (deployment.metadata.name !== "otto-agent") {
      assert.deepEqual(tls, { OTTO_TLS_CERT: "/etc/otto/tls/tls.crt", OTTO_TLS_KEY: "/etc/otto/tls/tls.key", OTTO_TLS_CA: "/etc/otto/tls/ca.crt" });
      assert.equal(container.securityContext.runAsNonRoot, true, `${deployment.metadata.name} runs as a user that is not root`);
    } else {
      assert.deepEqual(tls, {}, "the agent has no certificate of Otto's");
      const ca = spec.volumes.find((v: any) => v.secret?.secretName === "otto-gateway-tls");
      assert.deepEqual(ca.secret.items, [{ key: "ca.crt", path: "ca.crt" }], "only the CA, never the gateway's key");
      assert.ok(!container.env.some((e: any) => e.name === "DATABASE_URL" || /^OTTO_S3_/.test(e.name)), "no storage credential");
    }
  }
});

test("every OTTO_ variable the manifests set is one Otto reads", async () => {
  const sources: string[] = [];
  for (const service of await readdir(join(root, "services"))) {
    for (const file of await readdir(join(root, "services", service, "src"), { recursive: true })) {
      if (String(file).endsWith(".ts")) sources.push(await readFile(join(root, "services", service, "src", String(file)), "utf8"));
    }
  }
  const all = sources.join("\n");
  for (const deployment of deployments) {
    for (const { name } of containerOf(deployment).env) if (name.startsWith("OTTO_")) assert.match(all, new RegExp(`\\b${name}\\b`), `${deployment.metadata.name}: ${name} is read by Otto`);
  }
});
