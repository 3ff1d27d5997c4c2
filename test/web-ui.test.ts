// The web UI in a real browser: Debian's Chromium, driven by playwright-core,
// against a whole Otto. A person signs in with a token, watches a run appear
// and its jobs change state, reads a job's log as it is written, approves a
// job, cancels a run, is refused what their token may not do, and signs out;
// markup in a pipeline's name and in a log line stays text.
//
// Needs Chromium at /usr/bin/chromium (or OTTO_TEST_CHROMIUM): .ci/run
// installs it with apt-get as root; elsewhere the file is skipped with a
// message. A failing test leaves a screenshot in the data directory it
// prints (kept). OTTO_UPDATE_SCREENSHOT=1 saves the run page to
// docs/run-page.png.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { pipeline, submit, waitForRun, RunState } from "@otto/sdk";
import { noChromium, openBrowser, type TestBrowser } from "./helpers/browser.ts";
import { postJson, startTestOtto, stepsSharedDir, waitFor, type TestOtto } from "./helpers/otto.ts";

const root = join(import.meta.dirname, "..");

const markupName = '<b>release</b> <img src=x onerror="window.__pwned=1">';
const markupLine = '<img src=x onerror="window.__pwned=1">';
const deadline = 30_000;

describe("the web UI in Chromium", { skip: noChromium, timeout: 300_000 }, () => {
  let otto: TestOtto;
  let chrome: TestBrowser;
  let context: BrowserContext;
  let page: Page;
  let gate: string;
  let releaseRunId = "";

  before(async () => {
    otto = await startTestOtto();
    gate = await stepsSharedDir(otto, "web-ui");
    chrome = await openBrowser(otto, { timeoutMs: deadline });
    ({ context, page } = chrome);
  });

  after(async () => {
    await chrome?.close();
    await otto?.stopAndClean();
  });

  const step = (name: string, body: () => Promise<void>) => chrome.step(name, body);
  const stateOf = (job: string) => page.locator(`.job[data-job="${job}"] [data-testid="job-state"]`);
  const waitForText = (selector: string, text: string | RegExp) => page.locator(selector).filter({ hasText: text }).first().waitFor();
  const pwned = () => page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned);

  async function signIn(token: string) {
    await page.locator("#token").fill(token);
    await page.getByRole("button", { name: "Sign in" }).click();
  }

  it("signs in with a pasted token, kept in the tab's session storage and never in the address", async () => {
    await step("sign in", async () => {
      await page.goto(`${otto.gatewayUrl}/`);
      await signIn(otto.adminToken!);
      await page.getByRole("heading", { name: "Runs" }).waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem("otto.token")), otto.adminToken);
      assert.ok(!page.url().includes(otto.adminToken!), page.url());
      assert.deepEqual(
        (await context.cookies()).map((c) => c.name),
        [],
        "no cookie",
      );
    });
  });

  it("shows a run submitted through the API in the list while it runs, its markup as text", async () => {
    await step("runs list", async () => {
      const build = [
        { name: "compile", run: "echo compiling" },
        {
          name: "report",
          run: `while [ ! -f ${gate}/build ]; do sleep 0.05; done; printf '\\033[1;31mred alert\\033[0m\\n'; echo '${markupLine}'; echo done building`,
        },
      ];
      const ir = pipeline(markupName)
        .job("build", { steps: build })
        .job("lint", { steps: ["echo lint ok"] })
        .job("test", { needs: ["build"], steps: [`while [ ! -f ${gate}/test ]; do sleep 0.05; done; echo tests pass`] })
        .job("deploy", { needs: ["test", "lint"], approval: { message: "Ship it?" }, steps: ["echo shipped"] })
        .build();
      releaseRunId = (await submit(otto.client, ir)).id;
      const row = page.locator(`tr[data-run-id="${releaseRunId}"]`);
      await row.locator(".state", { hasText: /^RUNNING$/ }).waitFor();
      assert.equal(await row.locator(".run-name").textContent(), markupName);
      assert.equal(await page.locator("table.runs img, table.runs b").count(), 0, "no element made of the name");
      assert.equal(await pwned(), undefined);
    });
  });

  it("opens the run and follows its jobs' states as they change", async () => {
    await step("run page", async () => {
      await page.locator(`tr[data-run-id="${releaseRunId}"] .run-name`).click();
      await page.waitForURL(`**/runs/${releaseRunId}`);
      assert.equal(await page.locator("h1 .run-name").textContent(), markupName);
      await stateOf("build").filter({ hasText: /^RUNNING$/ }).waitFor();
      await stateOf("lint").filter({ hasText: /^SUCCEEDED$/ }).waitFor();
      await stateOf("test").filter({ hasText: /^QUEUED$/ }).waitFor();
      await stateOf("deploy").filter({ hasText: /^QUEUED$/ }).waitFor();
      // Why a job waits, as WatchRun says.
      await page.locator('.job[data-job="test"] .waiting').filter({ hasText: /build/ }).waitFor();
      assert.match((await page.locator('.job[data-job="build"] .agent').textContent()) ?? "", /^on .+/);
      // The graph's columns follow `needs`: build and lint, then test, then deploy.
      const left = async (job: string) => (await page.locator(`.job[data-job="${job}"]`).boundingBox())!.x;
      assert.equal(await left("build"), await left("lint"));
      assert.ok((await left("build")) < (await left("test")) && (await left("test")) < (await left("deploy")));
    });
  });

  it("opens a job's log and sees its lines arrive, coloured, numbered, and markup as text", async () => {
    await step("job log", async () => {
      await page.locator('.job[data-job="build"] a.job-name').click();
      await page.waitForURL(`**/runs/${releaseRunId}/jobs/build`);
      await waitForText(".log .line .text", "compiling");
      await writeFile(join(gate, "build"), "");
      await waitForText(".log .line .text", "done building");
      const red = page.locator(".log .line .text span.ansi-bold.ansi-fg-1");
      assert.equal(await red.textContent(), "red alert");
      // (The step's command line, echoed before it ran, holds the markup too.)
      await page.locator("pre.log").getByText(markupLine, { exact: true }).waitFor();
      assert.equal(await page.locator(".log img").count(), 0, "the line made no element");
      assert.equal(await pwned(), undefined);
      const first = page.locator(".log .line").filter({ has: page.getByText("compiling", { exact: true }) });
      const anchor = await first.getAttribute("id");
      assert.match(anchor ?? "", /^L\d+$/);
      assert.equal(await first.locator("a.ln").getAttribute("href"), `#${anchor}`);
      await page.locator("h1 [data-testid=job-state]").filter({ hasText: /^SUCCEEDED$/ }).waitFor();

      // The server's search, and a link to the line it found.
      await page.getByLabel("Search the log").fill("ALERT");
      await page.getByRole("button", { name: "Search" }).click();
      const hit = page.locator(".found li").filter({ has: page.getByText("red alert", { exact: true }) });
      await hit.waitFor();
      assert.equal(await page.locator(".found li").filter({ has: page.getByText("done building", { exact: true }) }).count(), 0, "only matching lines");
      await hit.locator("a").click();
      await page.waitForURL(/#L\d+$/);
      assert.equal(await page.locator(".log .line.target .text").textContent(), "red alert");
      await page.locator(".crumbs a").nth(1).click();
      await page.waitForURL(`**/runs/${releaseRunId}`);
      await stateOf("build").filter({ hasText: /^SUCCEEDED$/ }).waitFor();
    });
  });

  it("reads a long log from its end, and the earlier lines on scrolling up", async () => {
    await step("long log", async () => {
      const { id } = await submit(otto.client, pipeline("long").job("count", { steps: ["seq 1 1500"] }).build());
      await waitForRun(otto.client, id);
      await page.goto(`${otto.gatewayUrl}/runs/${id}/jobs/count`);
      await waitForText(".log .line .text", /^1500$/);
      assert.equal(await page.locator(".log .line").count(), 1000, "the last 1000 lines");
      assert.equal(await page.locator("#L1").count(), 0);
      await page.locator("button.earlier").scrollIntoViewIfNeeded();
      await page.locator("#L1").waitFor();
      const last = Number((await page.locator(".log .line").last().getAttribute("id"))!.slice(1));
      assert.equal(await page.locator(".log .line").count(), last, "every line from the first to the last");
      // A link to a line opens the log around it.
      await page.goto(`${otto.gatewayUrl}/runs/${id}/jobs/count?attempt=1#L${last - 300}`);
      await page.locator(`#L${last - 300}`).waitFor();
      assert.equal(await page.locator(".log .line.target").getAttribute("id"), `L${last - 300}`);
      assert.ok((await page.locator(".log .line").count()) < 1000, "read from around the line, not the whole log");
    });
  });

  it("shows the next jobs run, a job waiting for approval, and approves it", async () => {
    await step("approval", async () => {
      await page.goto(`${otto.gatewayUrl}/runs/${releaseRunId}`);
      await stateOf("test").filter({ hasText: /^RUNNING$/ }).waitFor();
      await writeFile(join(gate, "test"), "");
      await stateOf("test").filter({ hasText: /^SUCCEEDED$/ }).waitFor();
      await stateOf("deploy").filter({ hasText: /^WAITING$/ }).waitFor();
      const approve = page.locator('.job[data-job="deploy"] button.approve');
      await approve.waitFor();
      await approve.click();
      await stateOf("deploy").filter({ hasText: /^SUCCEEDED$/ }).waitFor();
      await page.locator("h1 [data-testid=run-state]").filter({ hasText: /^SUCCEEDED$/ }).waitFor();
    });
  });

  it("cancels a running run from its page", async () => {
    await step("cancel", async () => {
      const ir = pipeline("held").job("hold", { steps: [`while [ ! -f ${gate}/never ]; do sleep 0.05; done`] }).build();
      const { id } = await submit(otto.client, ir);
      // An address of the page, opened anew: the session is still there.
      await page.goto(`${otto.gatewayUrl}/runs/${id}`);
      await stateOf("hold").filter({ hasText: /^RUNNING$/ }).waitFor();
      await page.getByRole("button", { name: "Cancel" }).click();
      await page.locator("h1 [data-testid=run-state]").filter({ hasText: /^CANCELED$/ }).waitFor();
      await stateOf("hold").filter({ hasText: /^CANCELED$/ }).waitFor();
      assert.equal((await waitForRun(otto.client, id)).state, RunState.CANCELED);
    });
  });

  it("keeps a filtered list live from one stream and one read: a run joins it when it reaches the state", async () => {
    await step("live list", async () => {
      const other = await submit(otto.client, pipeline("elsewhere").job("quick", { steps: ["true"] }).build());
      assert.equal((await waitForRun(otto.client, other.id)).state, RunState.SUCCEEDED);
      const reads: string[] = [];
      const countReads = (request: { url(): string }) => {
        const method = /otto\.v1\.RunService\/(ListRuns|GetRun|WatchRuns)$/.exec(new URL(request.url()).pathname)?.[1];
        if (method) reads.push(method);
      };
      page.on("request", countReads);
      try {
        await page.goto(`${otto.gatewayUrl}/?state=succeeded&pipeline=live-list`);
        await page.locator("p.empty").waitFor();
        const { id } = await submit(otto.client, pipeline("live-list").job("wait", { steps: [`while [ ! -f ${gate}/live ]; do sleep 0.05; done`] }).build());
        const row = page.locator(`tr[data-run-id="${id}"]`);
        await waitFor("the run started", async () => (await otto.client.runs.getRun({ runId: id })).run?.state === RunState.RUNNING);
        await writeFile(join(gate, "live"), "");
        await row.locator(".state", { hasText: /^SUCCEEDED$/ }).waitFor();
        assert.equal(await page.locator(`tr[data-run-id="${other.id}"]`).count(), 0, "another pipeline's run stays out");
        assert.equal(await page.locator("tr.run-row").count(), 1);
        assert.deepEqual(
          reads.filter((method) => method !== "GetRun"),
          ["WatchRuns", "ListRuns"],
          "the list is read once; changes come from the stream",
        );
        await page.locator("select[name=state]").selectOption("");
        assert.match(page.url(), /\/\?pipeline=live-list$/);
        await row.waitFor();
      } finally {
        page.off("request", countReads);
      }
    });
  });

  it("keeps the token when Otto cannot be asked what it may do, and tries again on request", async () => {
    await step("whoami unavailable", async () => {
      let refused = 0;
      await page.route("**/otto.v1.AccountService/WhoAmI", async (route) => {
        if (refused++ > 0) return route.continue();
        await route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ code: "unavailable", message: "Otto is restarting" }) });
      });
      try {
        await page.goto(`${otto.gatewayUrl}/`);
        await waitForText("main .error", "Otto is restarting");
        assert.equal(await page.evaluate(() => sessionStorage.getItem("otto.token")), otto.adminToken);
        await page.getByRole("button", { name: "Try again" }).click();
        await page.getByRole("heading", { name: "Runs" }).waitFor();
      } finally {
        await page.unroute("**/otto.v1.AccountService/WhoAmI");
      }
    });
  });

  it("reads the list again when its first read failed, at the stream's next message", async () => {
    await step("list retried", async () => {
      // Only this page's reads count: the page before may still be reading its own list.
      let refused = 0;
      await page.route("**/otto.v1.RunService/ListRuns", async (route) => {
        if (!/"pipeline":\s*"retried"/.test(route.request().postData() ?? "") || refused++ > 0) return route.continue();
        await route.fulfill({ status: 503, contentType: "application/json", body: JSON.stringify({ code: "unavailable", message: "a gateway hiccup" }) });
      });
      try {
        await page.goto(`${otto.gatewayUrl}/?pipeline=retried`);
        await waitForText("main .error", "a gateway hiccup");
        const { id } = await submit(otto.client, pipeline("retried").job("quick", { steps: ["true"] }).build());
        await page.locator(`tr[data-run-id="${id}"] .state`, { hasText: /^SUCCEEDED$/ }).waitFor();
        assert.equal(await page.locator("main .error").count(), 0, "the error is gone once the list is read");
        assert.ok(refused >= 2, `ListRuns was asked ${refused} times`);
      } finally {
        await page.unroute("**/otto.v1.RunService/ListRuns");
      }
    });
  });

  it("downloads a job's artifact over the page's HTTPS, with the bearer header and no token in an address", async () => {
    await step("artifact", async () => {
      const words = `made by the web test ${Date.now()}`;
      const ir = pipeline("artifacts")
        .job("make", { artifacts: ["dist/app.txt"], steps: [`mkdir -p dist && echo '${words}' > dist/app.txt`] })
        .build();
      const { id } = await submit(otto.client, ir);
      assert.equal((await waitForRun(otto.client, id)).state, RunState.SUCCEEDED);
      const addresses: string[] = [];
      const seen = (request: { url(): string }) => void addresses.push(request.url());
      page.on("request", seen);
      try {
        await page.goto(`${otto.gatewayUrl}/runs/${id}/jobs/make`);
        const button = page.locator('button.download[data-artifact="dist/app.txt"]');
        await button.waitFor();
        const [download] = await Promise.all([page.waitForEvent("download"), button.click()]);
        assert.equal(download.suggestedFilename(), "app.txt");
        const saved = await download.path();
        assert.equal((await readFile(saved, "utf8")).trim(), words);
        const fetched = addresses.filter((address) => address.includes("/artifacts/"));
        assert.equal(fetched.length, 1, addresses.join("\n"));
        assert.ok(fetched[0].startsWith(`${otto.gatewayUrl}/artifacts/${id}/make/dist/app.txt`), fetched[0]);
        assert.ok(addresses.every((address) => !address.includes(otto.adminToken!)), "no token in an address");

        // Bytes other than those the job uploaded are not saved.
        let downloads = 0;
        const counted = () => void downloads++;
        page.on("download", counted);
        await page.route("**/artifacts/**", (route) => route.fulfill({ status: 200, contentType: "application/octet-stream", body: `not ${words}\n` }));
        try {
          await button.click();
          await page.getByRole("alert").filter({ hasText: "dist/app.txt is not what its job uploaded (its SHA-256 differs); not saved" }).waitFor();
          assert.equal(downloads, 0);
        } finally {
          await page.unroute("**/artifacts/**");
          page.off("download", counted);
        }
      } finally {
        page.off("request", seen);
      }
    });
  });

  it("saves the run page for the README", { skip: !process.env.OTTO_UPDATE_SCREENSHOT && "set OTTO_UPDATE_SCREENSHOT=1 to save docs/run-page.png" }, async () => {
    await step("screenshot", async () => {
      const ir = pipeline("app")
        .job("build", { steps: [{ name: "compile", run: "echo compiled" }] })
        .job("lint", { steps: ["echo lint ok"] })
        .job("unit", { needs: ["build"], steps: ["echo unit tests pass"] })
        .job("integration", { needs: ["build"], steps: [`while [ ! -f ${gate}/never ]; do sleep 0.05; done`] })
        .job("package", { needs: ["unit", "lint"], steps: ["echo packaged"] })
        .job("deploy", { needs: ["package", "integration"], approval: { message: "Ship it?" }, steps: ["echo shipped"] })
        .build();
      const { id } = await submit(otto.client, ir);
      await page.goto(`${otto.gatewayUrl}/runs/${id}`);
      await stateOf("package").filter({ hasText: /^SUCCEEDED$/ }).waitFor();
      await stateOf("integration").filter({ hasText: /^RUNNING$/ }).waitFor();
      await mkdir(join(root, "docs"), { recursive: true });
      await page.screenshot({ path: join(root, "docs", "run-page.png") });
      console.log("saved docs/run-page.png");
      await otto.client.runs.cancelRun({ runId: id });
    });
  });

  it("signs out, and offers a reader's token no action it may not take", async () => {
    await step("reader", async () => {
      await page.goto(`${otto.gatewayUrl}/runs/${releaseRunId}`);
      await page.getByRole("button", { name: "Rerun", exact: true }).waitFor();
      await page.getByRole("button", { name: "Sign out" }).click();
      await page.locator("#token").waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem("otto.token")), null);
      const { token } = await otto.client.admin.createToken({ name: "web reader", scopes: ["runs:read"] });
      // Signed in again, the page is where it was.
      await signIn(token);
      await page.getByRole("button", { name: "Sign out" }).waitFor();
      await page.goto(`${otto.gatewayUrl}/runs/${releaseRunId}`);
      await page.locator('[data-testid="run-state"]').waitFor();
      await page.locator('.job[data-job="build"]').waitFor();
      assert.equal(await page.locator(".actions button, .decide button").count(), 0, "no cancel, rerun, approve or reject");
      await page.getByRole("button", { name: "Sign out" }).click();
    });
  });

  it("answers a refused token with Otto's message on the form", async () => {
    await step("bad token", async () => {
      await page.locator("#token").waitFor();
      const bogus = "otto_api_not-a-token";
      await signIn(bogus);
      const refusal = await postJson(otto.gatewayUrl, "/otto.v1.RunService/ListRuns", {}, { authorization: `Bearer ${bogus}` });
      assert.equal(refusal.json?.code, "unauthenticated", refusal.text);
      await waitForText(".sign-in .error", refusal.json.message);
      assert.equal(await page.evaluate(() => sessionStorage.getItem("otto.token")), null);
    });
  });

  it("ran without a script error, a policy violation, or the markup running", async () => {
    await step("clean", async () => {
      assert.equal(await pwned(), undefined);
      assert.deepEqual(chrome.pageErrors, []);
      assert.deepEqual(chrome.policyViolations, []);
    });
  });
});
