// Drive the offline Swagger UI at /docs in Debian's headless Chromium, the way a person would:
// expand one operation, "Try it out", "Execute", read the response Swagger UI shows.
//
//   node swagger_try_it_out.mjs <docs-url> <operation-dom-id> <screenshot.png> <user-data-dir>
//
// Prints one JSON object on stdout, {status, body, error, requests, console}, and exits 1 when a
// step failed. `requests` is every URL the page asked for, so the caller can prove the docs load
// nothing from outside the machine (a CDN request is recorded, then fails to resolve).
// Run by tests/frontend/test_swagger_ui.py. Uses the system Chromium (never a downloaded one).
import { chromium } from "playwright-core";

const [docsUrl, operationId, screenshotPath, userDataDir] = process.argv.slice(2);
if (!userDataDir) {
  console.error("usage: node swagger_try_it_out.mjs <docs-url> <operation-dom-id> <png> <profile-dir>");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

// Nothing may leave the machine: no background services, no QUIC, and every host name but the
// loopback address resolves to nothing, so even a page that tried would reach no one.
const args = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--disable-dev-shm-usage",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

const report = { status: null, body: null, error: null, requests: [], console: [] };
// launchPersistentContext is how Playwright takes a given (fresh) --user-data-dir.
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args,
  viewport: { width: 1280, height: 1000 },
  timeout: 20_000,
});
try {
  context.on("request", (request) => report.requests.push(request.url()));
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("console", (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.setDefaultTimeout(15_000);

  await page.goto(docsUrl, { waitUntil: "load" });
  const operation = page.locator(`#${operationId}`);
  await operation.locator(".opblock-summary-control").click();
  await operation.locator("button.try-out__btn").click();
  await operation.locator("button.execute").click();

  const answer = operation.locator(".live-responses-table tbody .response").first();
  await answer.waitFor();
  report.status = (await answer.locator(".response-col_status").innerText()).trim();
  report.body = await answer.locator(".response-col_description .highlight-code pre").first().innerText();

  await operation.locator(".live-responses-table").scrollIntoViewIfNeeded();
  await page.screenshot({ path: screenshotPath });
} catch (error) {
  // Still report what was requested: a page that waited on a CDN fails here, and says so.
  report.error = String(error);
  process.exitCode = 1;
} finally {
  await context.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
