// Many tabs following live streams in one browser: each job log page holds
// streams open (WatchRun, and ReadLog following the log). Over HTTP/1.1 a
// browser opens at most 6 connections to a server, so a few such tabs would
// hold them all and every further request would wait; the gateway speaks
// HTTP/2 to browsers, where they share one connection.
//
// Needs Chromium at /usr/bin/chromium (or OTTO_TEST_CHROMIUM), as
// web-ui.test.ts; skipped with a message without it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { pipeline, submit, waitForRun } from "@otto/sdk";
import { noChromium, openBrowser, type TestBrowser } from "./helpers/browser.ts";
import { startTestOtto, stepsSharedDir, type TestOtto } from "./helpers/otto.ts";

// More log pages than a browser's 6 HTTP/1.1 connections to one server.
const logPages = 8;
// Long enough for a loaded machine; a page whose requests wait for a
// connection never loads at all.
const deadline = 90_000;

describe("the web UI with many live pages in one browser", { skip: noChromium, timeout: 600_000 }, () => {
  let otto: TestOtto;
  let chrome: TestBrowser;
  let gate: string;
  let runId = "";

  before(async () => {
    otto = await startTestOtto();
    gate = await stepsSharedDir(otto, "web-ui-streams");
    chrome = await openBrowser(otto, { timeoutMs: deadline });
    // Each tab signed in (the token lives in the tab's session storage).
    await chrome.context.addInitScript((token) => sessionStorage.setItem("otto.token", token), otto.adminToken!);
    const hold = `echo waiting for the gate; while [ ! -f ${gate}/go ]; do sleep 0.05; done; echo through`;
    runId = (await submit(otto.client, pipeline("held").job("hold", { steps: [hold] }).build())).id;
  });

  after(async () => {
    if (gate) await writeFile(join(gate, "go"), "").catch(() => {});
    await chrome?.close();
    await otto?.stopAndClean();
  });

  async function openPage(url: string): Promise<Page> {
    const page = await chrome.context.newPage();
    page.setDefaultTimeout(deadline);
    await page.goto(url, { timeout: deadline });
    return page;
  }

  const protocols = (page: Page) =>
    page.evaluate(() =>
      [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")].map(
        (entry) => `${(entry as PerformanceResourceTiming).nextHopProtocol} ${entry.name}`,
      ),
    );

  it(`follows a running job's log in ${logPages} pages, and a further page still loads the runs list`, async () => {
    await chrome.step("many pages", async () => {
      const pages: Page[] = [];
      for (let i = 0; i < logPages; i++) {
        const page = await openPage(`${otto.gatewayUrl}/runs/${runId}/jobs/hold`);
        // The log is followed: its first line is in, the job still runs.
        await page.locator(".log .line .text").filter({ hasText: "waiting for the gate" }).first().waitFor();
        pages.push(page);
      }
      for (const page of pages) {
        const seen = await protocols(page);
        assert.ok(seen.length > 0 && seen.every((line) => line.startsWith("h2 ")), seen.join("\n"));
      }
      const runs = await openPage(`${otto.gatewayUrl}/`);
      await runs.locator(`tr[data-run-id="${runId}"] .state`, { hasText: /^RUNNING$/ }).waitFor();
      const seen = await protocols(runs);
      assert.ok(seen.every((line) => line.startsWith("h2 ")), seen.join("\n"));

      // The followed logs go on: every page sees the job's next line.
      await writeFile(join(gate, "go"), "");
      for (const page of pages) await page.locator(".log .line .text").filter({ hasText: /^through$/ }).first().waitFor();
      await waitForRun(otto.client, runId);
    });
  });
});
