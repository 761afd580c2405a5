// Drive the page in headless Chromium the way a person would: wait for the model, type each text, press
// the button, read the answer. Writes what the page showed (with its per-text latency) as JSON and a
// screenshot. Used by tests/integration/test_examples_web_node.py; handy by hand too:
//
//   node serve.mjs EXPORT_DIR --port 8080 &
//   node e2e/drive.mjs --url http://127.0.0.1:8080/ --texts texts.json --out results.json --screenshots shots/
//
// --url may be given several times (e.g. with ?file=model.onnx): one browser visits each in turn;
// results.json is a list with one entry per URL and shots/ gets page-0.png, page-1.png, ...
//
// It uses the system's Chromium (Debian's `chromium` package; CHROMIUM=/path overrides) through
// playwright-core: a test tool's own browser download cannot work offline.

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

// Without the background-networking flags Chromium keeps trying to reach Google's hosts, which a closed
// network refuses many times a second. --no-sandbox because CI runs as root.
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const { values } = parseArgs({
  options: {
    url: { type: "string", multiple: true },
    texts: { type: "string" },
    out: { type: "string" },
    screenshots: { type: "string" },
    timeout: { type: "string", default: "60000" },
  },
});
if (!values.url || !values.texts || !values.out) {
  console.error("usage: node e2e/drive.mjs --url URL [--url URL2] --texts TEXTS.json --out RESULTS.json [--screenshots DIR]");
  process.exit(2);
}
const texts = JSON.parse(await readFile(values.texts, "utf8"));
const timeout = Number(values.timeout);

const profile = await mkdtemp(path.join(tmpdir(), "distill-chromium-"));
// launchPersistentContext, because plain launch() refuses a --user-data-dir and we want a fresh profile.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ARGS,
  viewport: { width: 900, height: 720 },
});
const problems = [];
const pages = [];
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && problems.push(`console error: ${m.text()}`));
  page.on("requestfailed", (r) => problems.push(`request failed: ${r.url()} (${r.failure()?.errorText})`));
  if (values.screenshots) await mkdir(values.screenshots, { recursive: true });

  for (const [n, url] of values.url.entries()) {
    await page.goto(url, { timeout });
    // The page says "ready" or "error" in #status once loading ends.
    await page.waitForSelector('#status:is([data-state="ready"], [data-state="error"])', { timeout });
    const status = await page.textContent("#status");
    if ((await page.getAttribute("#status", "data-state")) !== "ready") throw new Error(`${url}: page did not load: ${status}`);

    for (const [i, text] of texts.entries()) {
      await page.fill("#text", text);
      await page.click("#label");
      // The page either shows the answer or says in #status why it could not.
      await page.waitForFunction(
        (k) => window.distill.results.length === k || document.getElementById("status").dataset.state === "error",
        i + 1,
        { timeout },
      );
      if ((await page.getAttribute("#status", "data-state")) === "error") {
        throw new Error(`${url}: text #${i + 1}: ${await page.textContent("#status")}`);
      }
    }
    const shown = await page.evaluate((typed) => ({
      results: window.distill.results,
      ids: typed.map((t) => window.distill.clf.encode(t).ids), // the token ids the page fed the model
      loadMs: window.distill.loadMs,
      warmupMs: window.distill.warmupMs,
      model: window.distill.clf.modelFile,
      answer: document.getElementById("answer-label").textContent,
      rows: document.querySelectorAll("#history tbody tr").length,
      userAgent: navigator.userAgent,
    }), texts);
    const screenshot = values.screenshots ? path.join(values.screenshots, `page-${n}.png`) : null;
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    pages.push({ url, status, ...shown, screenshot });
  }
  await writeFile(values.out, JSON.stringify(pages, null, 2));
  if (problems.length) throw new Error(problems.join("\n"));
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
