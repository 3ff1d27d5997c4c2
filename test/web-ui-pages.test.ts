// The web UI's Agents and Projects pages in a real browser (Debian's
// Chromium, driven by playwright-core) against a whole Otto with two
// labelled agents: an admin sees the agents, and a job take a slot and give
// it back; a project with its webhook URL, and its runs as they happen; a
// reader's token is offered no Agents page and told why.
//
// Needs Chromium at /usr/bin/chromium (or OTTO_TEST_CHROMIUM), as
// test/web-ui.test.ts; skipped with a message where it is missing. A failing
// test leaves a screenshot in the data directory it prints (kept).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { createTestRepo, type TestRepo } from "./helpers/git-repo.ts";
import { noChromium, openBrowser, type TestBrowser } from "./helpers/browser.ts";
import { startTestOtto, stepsSharedDir, type TestOtto } from "./helpers/otto.ts";

const deadline = 30_000;

describe("the web UI's Agents and Projects pages in Chromium", { skip: noChromium, timeout: 300_000 }, () => {
  let otto: TestOtto;
  let repo: TestRepo;
  let chrome: TestBrowser;
  let page: Page;
  let gate: string;
  const listAgentsCalls: string[] = [];

  before(async () => {
    otto = await startTestOtto({ agents: 2, agentSlots: 2, agentLabels: (agent) => (agent === 1 ? ["linux", "fast"] : ["linux", "gpu"]) });
    gate = await stepsSharedDir(otto, "web-pages");
    repo = await createTestRepo(await stepsSharedDir(otto, "repos"), "acme", "site");
    chrome = await openBrowser(otto, { timeoutMs: deadline, permissions: ["clipboard-read", "clipboard-write"] });
    page = chrome.page;
    page.on("request", (request) => {
      if (request.url().includes("/otto.v1.AdminService/ListAgents")) listAgentsCalls.push(request.url());
    });
  });

  after(async () => {
    await chrome?.close();
    await repo?.remove();
    await otto?.stopAndClean();
  });

  const step = (name: string, body: () => Promise<void>) => chrome.step(name, body);

  const agentRow = (id: string) => page.locator(`tr.agent[data-agent-id="${id}"]`);
  const projectCard = (name: string) => page.locator(`section.project[data-project="${name}"]`);
  const navLink = (name: string) => page.locator("nav.top").getByRole("link", { name, exact: true });

  async function signIn(token: string) {
    await page.locator("#token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  }

  async function signOut() {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#token").waitFor();
  }

  it("lists the live agents with their labels and free slots, reached from the nav", async () => {
    await step("agents", async () => {
      await page.goto(`${otto.gatewayUrl}/`);
      await signIn(otto.adminToken!);
      await navLink("Agents").click();
      await page.waitForURL("**/agents");
      await page.getByRole("heading", { name: "Agents" }).waitFor();
      for (const [id, labels] of [
        ["agent-1", ["linux", "fast"]],
        ["agent-2", ["linux", "gpu"]],
      ] as const) {
        await agentRow(id).waitFor();
        assert.deepEqual(await agentRow(id).locator(".label").allTextContents(), labels);
        assert.equal(await agentRow(id).locator(".slot-count").textContent(), "0 / 2 busy");
        assert.equal(await agentRow(id).locator(".agent-jobs").textContent(), "idle");
        assert.equal(await agentRow(id).locator(".slot-bar").getAttribute("aria-valuenow"), "0");
      }
    });
  });

  it("shows a job take an agent's slot, linked to its log, and the slot free again once it ends", async () => {
    await step("busy agent", async () => {
      const ir = pipeline("gpu work")
        .job("train", { runsOn: ["gpu"], steps: [`while [ ! -f ${gate}/train ]; do sleep 0.05; done; echo trained`] })
        .build();
      const { id } = await submit(otto.client, ir);
      // Re-read by the page on its own: no reload.
      await agentRow("agent-2").locator(".slot-count").filter({ hasText: /^1 \/ 2 busy$/ }).waitFor();
      assert.equal(await agentRow("agent-2").locator(".slot-bar").getAttribute("aria-valuenow"), "1");
      assert.equal(await agentRow("agent-1").locator(".slot-count").textContent(), "0 / 2 busy");
      const link = agentRow("agent-2").locator("a.agent-job");
      assert.equal(await link.textContent(), "train");
      assert.equal(await link.getAttribute("href"), `/runs/${id}/jobs/train?attempt=1`);

      await writeFile(join(gate, "train"), "");
      assert.equal((await waitForRun(otto.client, id)).state, RunState.SUCCEEDED);
      await agentRow("agent-2").locator(".slot-count").filter({ hasText: /^0 \/ 2 busy$/ }).waitFor();
      await agentRow("agent-2").locator(".agent-jobs").filter({ hasText: /^idle$/ }).waitFor();
      assert.equal(await page.locator("a.agent-job").count(), 0);

      // The link opens the job's log.
      await page.goto(`${otto.gatewayUrl}/runs/${id}/jobs/train?attempt=1`);
      await page.locator(".log .line .text").filter({ hasText: "trained" }).first().waitFor();
    });
  });

  it("says there are no projects yet, and how to make one", async () => {
    await step("no projects", async () => {
      await navLink("Projects").click();
      await page.waitForURL("**/projects");
      await page.locator(".projects-page .empty").filter({ hasText: "No projects yet" }).waitFor();
      assert.match((await page.locator(".projects-page pre.command").textContent()) ?? "", /^otto project create /);
    });
  });

  it("shows a project's forge, repository and webhook URL with a Copy button, and its runs as they happen", async () => {
    await step("projects", async () => {
      const sha = await repo.commit(
        {
          "README.md": "site\n",
          ".otto.yml": `name: site build\njobs:\n  build:\n    steps:\n      - run: while [ ! -f ${gate}/site ]; do sleep 0.05; done; echo built\n`,
        },
        "first",
      );
      await otto.client.projects.createProject({ name: "site", repoUrl: repo.url, forge: { kind: "github", apiUrl: "https://forge.invalid/api" } });
      // A pipeline path is nearly free text: it stays text.
      const markup = 'ci/<img src=x onerror="window.__pwned=1">.yml';
      await otto.client.projects.createProject({ name: "marked", repoUrl: repo.url, pipelinePath: markup, forge: { kind: "gitea", apiUrl: "https://forge.invalid/api/v1" } });
      // Made while the page was open, with no run yet: they show once the
      // page is shown again (its tab brought back to the front).
      await page.evaluate(() => document.dispatchEvent(new Event("visibilitychange")));
      const marked = projectCard("marked");
      assert.equal(await marked.locator(".pipeline").textContent(), `${markup} on main`);
      assert.equal(await marked.getByLabel("Webhook URL of marked").inputValue(), `${otto.gatewayUrl}/hooks/gitea/marked`);
      assert.equal(await page.locator(".projects-page img").count(), 0, "no element made of the path");
      assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned), undefined);
      const card = projectCard("site");
      await card.waitFor();
      assert.equal(await card.locator(".project-name").textContent(), "site");
      assert.equal(await card.locator(".forge-kind").textContent(), "github");
      assert.equal(await card.locator(".forge-repository").textContent(), "acme/site");
      assert.equal(await card.locator(".repo-url").textContent(), repo.url);
      const url = card.getByLabel("Webhook URL of site");
      assert.equal(await url.inputValue(), `${otto.gatewayUrl}/hooks/github/site`);
      assert.equal(await url.getAttribute("readonly"), "");
      await card.locator(".empty").filter({ hasText: "No runs yet." }).waitFor();

      await card.getByRole("button", { name: "Copy" }).click();
      await card.locator(".copied").filter({ hasText: /^Copied$/ }).waitFor();
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `${otto.gatewayUrl}/hooks/github/site`);
      // Without a clipboard, the URL is selected for the person to copy.
      await page.evaluate(() => Object.defineProperty(navigator, "clipboard", { value: undefined }));
      await card.getByRole("button", { name: "Copy" }).click();
      await card.locator(".copied").filter({ hasText: /Ctrl\+C/ }).waitFor();
      assert.deepEqual(
        await url.evaluate((input: HTMLInputElement) => [document.activeElement === input, input.selectionStart, input.selectionEnd]),
        [true, 0, `${otto.gatewayUrl}/hooks/github/site`.length],
      );

      // A run of the project appears while the page is open, and moves on.
      const { run } = await otto.client.projects.runProject({ name: "site" });
      const row = card.locator(`tr.run-row[data-run-id="${run!.id}"]`);
      await row.locator(".state").filter({ hasText: /^RUNNING$/ }).waitFor();
      assert.equal(await row.locator(".run-name").textContent(), "#1 site build");
      assert.equal(await row.locator(".run-name").getAttribute("href"), `/runs/${run!.id}`);
      assert.equal(await row.locator(".sha").textContent(), sha.slice(0, 7));
      assert.equal(await row.locator("td").nth(2).textContent(), "main");
      await writeFile(join(gate, "site"), "");
      await row.locator(".state").filter({ hasText: /^SUCCEEDED$/ }).waitFor();

      await row.locator(".run-name").click();
      await page.waitForURL(`**/runs/${run!.id}`);
      await page.locator("h1 [data-testid=run-state]").filter({ hasText: /^SUCCEEDED$/ }).waitFor();
    });
  });

  it("shows its last five runs, newest first", async () => {
    await step("last runs", async () => {
      await writeFile(join(gate, "site"), "");
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await otto.client.projects.runProject({ name: "site" })).run!.id);
      for (const id of ids) await waitForRun(otto.client, id);
      await page.goto(`${otto.gatewayUrl}/projects`);
      const rows = projectCard("site").locator("tr.run-row");
      await rows.filter({ has: page.locator(".state", { hasText: /^SUCCEEDED$/ }) }).nth(4).waitFor();
      assert.deepEqual(
        await rows.evaluateAll((list) => list.map((row) => row.getAttribute("data-run-id"))),
        ids.slice(1).reverse(),
      );
    });
  });

  it("offers a reader's token no Agents page, and says why at its address", async () => {
    await step("reader", async () => {
      await signOut();
      const { token } = await otto.client.admin.createToken({ name: "web pages reader", scopes: ["runs:read"] });
      await signIn(token);
      await navLink("Projects").waitFor();
      assert.equal(await navLink("Agents").count(), 0);
      await navLink("Projects").click();
      await projectCard("site").waitFor();

      const calls = listAgentsCalls.length;
      await page.goto(`${otto.gatewayUrl}/agents`);
      await page.locator(".agents-page .notice").filter({ hasText: "agents:read" }).waitFor();
      assert.equal(await page.locator(".agents-page .error").count(), 0);
      assert.equal(await page.locator("table.agents").count(), 0);
      assert.equal(listAgentsCalls.length, calls, "the page asks nothing it may not");
      await signOut();
    });
  });

  it("shows the agents to a token with agents:read alone, and no runs", async () => {
    await step("agents reader", async () => {
      const { token } = await otto.client.admin.createToken({ name: "web pages agents", scopes: ["agents:read"] });
      await page.goto(`${otto.gatewayUrl}/agents`);
      await signIn(token);
      await navLink("Agents").waitFor();
      assert.equal(await navLink("Projects").count(), 0, "projects need runs:read");
      await agentRow("agent-1").waitFor();
      await agentRow("agent-2").waitFor();
      assert.equal(await page.locator(".agents-page .error").count(), 0);
      assert.equal(await navLink("Runs").count(), 0, "runs need runs:read");
      await page.goto(`${otto.gatewayUrl}/`);
      await page.locator("main .notice").filter({ hasText: "runs:read" }).waitFor();
      await signOut();
    });
  });

  it("ran without a script error or a policy violation", async () => {
    await step("clean", async () => {
      assert.deepEqual(chrome.pageErrors, []);
      assert.deepEqual(chrome.policyViolations, []);
    });
  });
});
