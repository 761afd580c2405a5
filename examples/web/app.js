// The page's logic: load the export folder named by ?model= (default "model/"), then label what the user types.
// Results also go to window.distill.results (full precision, with the time per text) for scripts and tests.

import * as ort from "onnxruntime-web/wasm";
import { Tokenizer } from "@huggingface/tokenizers";

import { loadClassifier } from "./classifier.mjs";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const folder = params.get("model") || "model/";
const modelBase = new URL(folder.endsWith("/") ? folder : `${folder}/`, location.href);

// The WebAssembly files sit next to the ORT module; wasmPaths is a plain prefix, so it needs the trailing slash.
ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", location.href).href;
// Several threads need cross-origin isolation (COOP/COEP headers) and gave nothing on small machines.
ort.env.wasm.numThreads = 1;

async function fetchOk(name) {
  const url = new URL(name, modelBase);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} (is ?model= the URL of an export folder?)`);
  return res;
}

const state = { results: [], clf: null, loadMs: null, warmupMs: null };
window.distill = state;

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").dataset.state = kind;
}

function showResult(r) {
  $("answer-label").textContent = r.label;
  $("answer-ms").textContent =
    `${r.ms.toFixed(1)} ms` + (r.truncated ? ` · only the first ${state.clf.maxLength} tokens were read` : "");
  const bars = $("bars");
  bars.replaceChildren();
  for (const [name, p] of Object.entries(r.probs).sort((a, b) => b[1] - a[1])) {
    const row = document.createElement("div");
    row.className = name === r.label ? "bar top" : "bar";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(100 * p).toFixed(1)}%`;
    const track = document.createElement("div");
    track.className = "track";
    track.append(fill);
    const label = document.createElement("span");
    label.textContent = name;
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = `${(100 * p).toFixed(1)}%`;
    row.append(label, track, pct);
    bars.append(row);
  }
  $("result").hidden = false;

  const tr = document.createElement("tr");
  for (const cell of [r.text, r.label, r.probs[r.label].toFixed(3), r.ms.toFixed(1)]) {
    const td = document.createElement("td");
    td.textContent = cell;
    tr.append(td);
  }
  tr.cells[0].title = r.text; // the cell shows one line; the whole text on hover
  $("history").tBodies[0].prepend(tr);
  $("history").hidden = false;
}

async function onSubmit(event) {
  event.preventDefault();
  const text = $("text").value;
  $("label").disabled = true;
  try {
    const t0 = performance.now();
    const { label, probs, truncated } = await state.clf.predict(text); // tokenize + run + softmax
    const r = { text, label, probs, truncated, ms: performance.now() - t0 };
    state.results.push(r);
    showResult(r);
  } catch (e) {
    setStatus(`Could not label this text: ${e.message}`, "error");
  } finally {
    $("label").disabled = false;
  }
}

async function main() {
  const t0 = performance.now();
  state.clf = await loadClassifier({
    ort,
    Tokenizer,
    readJson: async (name) => (await fetchOk(name)).json(),
    readBytes: async (name) => new Uint8Array(await (await fetchOk(name)).arrayBuffer()),
    modelFile: params.get("file") || undefined,
    sessionOptions: { executionProviders: ["wasm"] },
  });
  state.loadMs = performance.now() - t0;
  // One warm-up run so the first text the user types does not pay for WebAssembly's first-call costs.
  const t1 = performance.now();
  await state.clf.predict("warm up");
  state.warmupMs = performance.now() - t1;

  setStatus(
    `Model ${state.clf.modelFile} from ${modelBase.pathname} loaded in ${state.loadMs.toFixed(0)} ms ` +
      `(${state.clf.labels.length} labels: ${state.clf.labels.join(", ")}).`,
    "ready",
  );
  $("form").addEventListener("submit", onSubmit);
  // Enter labels the text; Shift+Enter starts a new line.
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) $("form").requestSubmit();
  });
  $("text").disabled = false;
  $("label").disabled = false;
  $("text").focus();
}

main().catch((e) => {
  console.error(e);
  setStatus(`Could not load the model: ${e.message}`, "error");
});
