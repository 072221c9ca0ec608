// Open studies in the real OHIF viewer in Debian's headless Chromium (WebGL in software:
// SwiftShader through ANGLE) and report what its viewport shows, as a radiologist would see it.
//
//   node ohif_view.mjs <job.json>
//
// job.json: {viewer, userDataDir, cases: [{name, studyInstanceUID, token, screenshot}]}.
// One browser for all cases; each case opens <viewer>/viewer?StudyInstanceUIDs=…&token=… in a
// fresh page, waits until the viewport's canvas holds a steady, non-uniform picture (or the
// time is up), and reports {name, canvas: {width, height, rgba (base64)}, error, console,
// requests, preflights}. `requests` is every request the page made (method, url, status,
// content type, whether it carried Authorization, its Accept and Range; for frames the first
// bytes of the answer), `preflights` every CORS
// preflight Chromium sent (from the DevTools protocol: they are not page requests).
// Prints one JSON array on stdout. Run by tests/frontend/test_ohif_viewer.py.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const job = JSON.parse(readFileSync(process.argv[2], "utf8"));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SETTLE_MS = 90_000;

// Nothing may leave the machine: no background services, no QUIC, and every host name but the
// loopback address resolves to nothing. WebGL (Cornerstone3D renders with it) in software.
const args = [
  "--headless",
  "--no-sandbox",
  "--use-gl=angle",
  "--use-angle=swiftshader",
  "--enable-unsafe-swiftshader",
  "--ignore-gpu-blocklist",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-extensions",
  "--disable-dev-shm-usage",
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

// The viewport's picture, sampled in the page: Cornerstone3D draws each viewport into a 2D
// canvas (canvas.cornerstone-canvas) from its offscreen WebGL context.
function readCanvas() {
  const canvas = document.querySelector("canvas.cornerstone-canvas");
  if (!canvas || !canvas.width || !canvas.height) return null;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  let min = 255;
  let max = 0;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) {
    const grey = (data[i] + data[i + 1] + data[i + 2]) / 3;
    min = Math.min(min, grey);
    max = Math.max(max, grey);
    sum += grey;
  }
  return { width: canvas.width, height: canvas.height, min, max, sum };
}

async function settledCanvas(page) {
  // Steady: two samples 1.5 s apart with the same sums, and something drawn (max > min).
  const deadline = Date.now() + SETTLE_MS;
  let previous = null;
  while (Date.now() < deadline) {
    const now = await page.evaluate(readCanvas);
    if (now && previous && now.max > now.min && now.sum === previous.sum) return true;
    previous = now;
    await page.waitForTimeout(1_500);
  }
  return false;
}

async function openCase(context, item) {
  const report = { name: item.name, canvas: null, settled: false, error: null, console: [], requests: [], preflights: [] };
  const page = await context.newPage();
  page.on("console", (message) => report.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => report.console.push(`pageerror: ${error}`));
  const seen = new Map();
  page.on("request", (request) => {
    const headers = request.headers();
    const entry = {
      method: request.method(),
      url: request.url(),
      authorization: "authorization" in headers,
      accept: headers.accept ?? null,
      range: headers.range ?? null,
      status: null,
      contentType: null,
      failure: null,
    };
    seen.set(request, entry);
    report.requests.push(entry);
  });
  const bodies = [];
  page.on("response", (response) => {
    const entry = seen.get(response.request());
    if (entry) {
      entry.status = response.status();
      entry.contentType = response.headers()["content-type"] ?? null;
      entry.bodyHead = null;
      // A frame's first bytes: in a multipart answer, the part's own headers, which are what
      // Cornerstone reads the transfer syntax from (wadors/extractMultipart.ts).
      if (entry.url.includes("/frames/")) {
        bodies.push(
          response
            .body()
            .then((body) => {
              entry.bodyHead = body.subarray(0, 512).toString("latin1");
            })
            .catch(() => {}),
        );
      }
    }
  });
  page.on("requestfailed", (request) => {
    const entry = seen.get(request);
    if (entry) entry.failure = request.failure()?.errorText ?? "failed";
  });
  // CORS preflights never reach page.on("request"): read them from the DevTools protocol.
  const cdp = await context.newCDPSession(page);
  const preflights = new Map();
  cdp.on("Network.requestWillBeSent", (event) => {
    if (event.type === "Preflight" || event.request.method === "OPTIONS") {
      const entry = {
        url: event.request.url,
        requestHeaders: event.request.headers["Access-Control-Request-Headers"] ?? null,
        status: null,
        allowHeaders: null,
        allowOrigin: null,
      };
      preflights.set(event.requestId, entry);
      report.preflights.push(entry);
    }
  });
  cdp.on("Network.responseReceived", (event) => {
    const entry = preflights.get(event.requestId);
    if (entry) {
      const headers = Object.fromEntries(Object.entries(event.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
      entry.status = event.response.status;
      entry.allowHeaders = headers["access-control-allow-headers"] ?? null;
      entry.allowOrigin = headers["access-control-allow-origin"] ?? null;
    }
  });
  await cdp.send("Network.enable");
  try {
    const url = new URL("/viewer", job.viewer);
    url.searchParams.set("StudyInstanceUIDs", item.studyInstanceUID);
    url.searchParams.set("token", item.token);
    await page.goto(url.toString(), { waitUntil: "load" });
    // The viewport appears once the study's metadata is in; give up early (and say why) when a
    // request to the data source failed and nothing came of it.
    const canvas = page.locator("canvas.cornerstone-canvas").first();
    for (let waited = 0, failedFor = 0; !(await canvas.isVisible()); waited += 1_000) {
      const failed = report.requests.some((r) => r.failure || (r.status ?? 0) >= 400);
      failedFor = failed ? failedFor + 1_000 : 0;
      if (waited > 60_000 || failedFor > 15_000) throw new Error("no viewport: the study did not load");
      await page.waitForTimeout(1_000);
    }
    report.settled = await settledCanvas(page);
    await Promise.all(bodies);
    report.canvas = await page.evaluate(() => {
      const canvas = document.querySelector("canvas.cornerstone-canvas");
      const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
      let binary = "";
      for (let i = 0; i < data.length; i += 0x8000) binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
      return { width: canvas.width, height: canvas.height, rgba: btoa(binary) };
    });
  } catch (error) {
    report.error = String(error);
  } finally {
    // OHIF's first-visit tour covers part of the viewport: dismiss it for the screenshot.
    await page.getByText("Skip all").click({ timeout: 1_000 }).catch(() => {});
    await page.screenshot({ path: item.screenshot }).catch(() => {});
    await page.close();
  }
  return report;
}

const context = await chromium.launchPersistentContext(job.userDataDir, {
  executablePath: CHROMIUM,
  headless: true,
  args,
  viewport: { width: 1280, height: 900 },
  timeout: 60_000,
});
const reports = [];
try {
  for (const item of job.cases) reports.push(await openCase(context, item));
} finally {
  await context.close();
  process.stdout.write(`${JSON.stringify(reports)}\n`);
}
