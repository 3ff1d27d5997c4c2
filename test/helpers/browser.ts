// A real Chromium (Debian's, driven by playwright-core) on a test Otto's
// gateway, for the web UI's tests: one page, the script errors and policy
// violations it saw, and `step`, which keeps a screenshot of a failure in
// the Otto's data directory (then kept, and its log printed).
import { existsSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { tailOfLog, type TestOtto } from "./otto.ts";

export const chromiumPath = [process.env.OTTO_TEST_CHROMIUM, "/usr/bin/chromium"].find((path) => path && existsSync(path));

// For describe's `skip`: false, or why the browser tests cannot run here.
export const noChromium = chromiumPath
  ? false
  : "Chromium is not installed: `apt-get install chromium` (Debian; .ci/run does it as root) or set OTTO_TEST_CHROMIUM to a Chromium binary";

export interface TestBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  pageErrors: string[];
  policyViolations: string[];
  // Runs one step of a story; a failure saves what the page showed.
  step(name: string, body: () => Promise<void>): Promise<void>;
  close(): Promise<void>;
}

export async function openBrowser(otto: TestOtto, options: { timeoutMs?: number; permissions?: string[] } = {}): Promise<TestBrowser> {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    // Chromium's own sandbox cannot run as root.
    args: process.getuid?.() === 0 ? ["--no-sandbox"] : [],
  });
  // The test Otto's certificate is from its own CA.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 860 } });
  if (options.permissions) await context.grantPermissions(options.permissions, { origin: otto.gatewayUrl });
  const page = await context.newPage();
  page.setDefaultTimeout(options.timeoutMs ?? 30_000);
  const pageErrors: string[] = [];
  const policyViolations: string[] = [];
  page.on("pageerror", (err) => pageErrors.push(err.message));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) policyViolations.push(message.text());
  });
  let failed = false;
  return {
    browser,
    context,
    page,
    pageErrors,
    policyViolations,
    async step(name, body) {
      try {
        await body();
      } catch (err) {
        failed = true;
        const file = join(otto.dataDir, `failure-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
        // The page opened last (a test may open more than the first).
        await (context.pages().at(-1) ?? page).screenshot({ path: file, fullPage: true }).catch(() => {});
        console.log(`screenshot of the failure (${name}): ${file}`);
        throw err;
      }
    },
    async close() {
      await browser.close().catch(() => {});
      if (failed) {
        process.env.OTTO_TEST_KEEP = "1";
        console.log(`a browser test failed: screenshots and Otto's log are kept in ${otto.dataDir}`);
        console.log(await tailOfLog(otto, 40));
      }
    },
  };
}
