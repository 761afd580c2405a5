// A tiny HTTP service that labels text with a model exported by `distill export --onnx`.
//
//   cd examples/node && ONNXRUNTIME_NODE_INSTALL=skip npm ci
//   node server.mjs EXPORT_DIR [--port 8000] [--host 127.0.0.1] [--model model.onnx] [--threads 1] [--max-body 65536]
//   curl -s localhost:8000/predict -d '{"text": "the soup was cold"}'
//   -> {"label":"negative","probs":{"negative":0.93,"positive":0.07},"truncated":false}
//
// POST /predict takes {"text": "<string>"} and answers {"label", "probs", "truncated"} ("truncated": the
// text was over labels.json's max_length tokens and only its start was read, as in `distill predict`).
// Bad input gets a 4xx with {"error": "<one line naming the problem and the fix>"}: 400 for a body that
// is not JSON, a missing "text" or a "text" that is not a string; 413 for a body over --max-body bytes.
// GET /health says which model is loaded. Only the export folder's files are used: labels.json,
// tokenizer.json and the model file.

import { readFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { Tokenizer } from "@huggingface/tokenizers";
import * as ort from "onnxruntime-node";

import { loadClassifier } from "../web/classifier.mjs";

const USAGE = "usage: node server.mjs EXPORT_DIR [--port 8000] [--host 127.0.0.1] [--model FILE] [--threads N] [--max-body BYTES]";

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * The JSON body of a request, refusing bodies over maxBytes. The rest of a refused body is read and
 * dropped rather than left unread: closing a socket with unread data makes the client see a reset instead
 * of our 413. A client that goes on sending far past the limit is cut off.
 */
function readJsonBody(req, maxBytes) {
  return new Promise((resolve, reject) => {
    const refuse = () => {
      req.removeAllListeners("data");
      let dropped = 0;
      req.on("data", (chunk) => {
        dropped += chunk.length;
        if (dropped > 16 * maxBytes) req.destroy();
      });
      req.resume();
      reject(new HttpError(413, `body too large: the limit is ${maxBytes} bytes (send one text per request)`));
    };
    if (Number(req.headers["content-length"]) > maxBytes) return refuse();
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > maxBytes) return refuse();
      chunks.push(chunk);
    });
    req.on("error", reject);
    req.on("end", () => {
      if (size > maxBytes) return;
      const raw = Buffer.concat(chunks).toString("utf8");
      try {
        resolve(JSON.parse(raw));
      } catch (e) {
        reject(new HttpError(400, `body is not valid JSON (${e.message}): send {"text": "..."}`));
      }
    });
  });
}

/** The text to label from a parsed body, or a 400 that says what to send instead. */
function textOf(body) {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, 'body must be a JSON object: send {"text": "..."}');
  }
  if (!("text" in body)) throw new HttpError(400, 'missing "text": send {"text": "..."}');
  if (typeof body.text !== "string") {
    const got = body.text === null ? "null" : Array.isArray(body.text) ? "array" : typeof body.text;
    throw new HttpError(400, `"text" must be a string, got ${got}`);
  }
  return body.text;
}

function send(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

export async function createServer({ exportDir, modelFile, threads, maxBody = 65536 }) {
  const clf = await loadClassifier({
    ort,
    Tokenizer,
    readJson: async (name) => JSON.parse(await readFile(path.join(exportDir, name), "utf8")),
    readBytes: (name) => readFile(path.join(exportDir, name)),
    modelFile,
    sessionOptions: threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {},
  });

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    try {
      if (url.pathname === "/health" && req.method === "GET") {
        return send(res, 200, { ok: true, model: clf.modelFile, labels: clf.labels, max_length: clf.maxLength });
      }
      if (url.pathname !== "/predict") throw new HttpError(404, `no such endpoint ${url.pathname}: POST /predict`);
      if (req.method !== "POST") throw new HttpError(405, `${req.method} /predict: use POST with {"text": "..."}`);
      const text = textOf(await readJsonBody(req, maxBody));
      return send(res, 200, await clf.predict(text));
    } catch (e) {
      if (e instanceof HttpError) return send(res, e.status, { error: e.message });
      console.error(e);
      return send(res, 500, { error: `prediction failed: ${e.message}` });
    }
  });
  return { server, clf };
}

async function main() {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        port: { type: "string", default: process.env.PORT || "8000" },
        host: { type: "string", default: "127.0.0.1" },
        model: { type: "string" },
        threads: { type: "string" },
        "max-body": { type: "string", default: "65536" },
      },
    });
  } catch (e) {
    console.error(`${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const exportDir = args.positionals[0] || process.env.MODEL_DIR;
  if (!exportDir) {
    console.error(`give the export folder (written by \`distill export --onnx\`)\n${USAGE}`);
    process.exit(2);
  }
  const { server, clf } = await createServer({
    exportDir,
    modelFile: args.values.model,
    threads: args.values.threads ? Number(args.values.threads) : undefined,
    maxBody: Number(args.values["max-body"]),
  });
  server.listen(Number(args.values.port), args.values.host, () => {
    const { address, port } = server.address();
    // Tests and scripts wait for this line (and read the port from it when --port 0).
    console.log(`listening on http://${address}:${port} (model ${clf.modelFile}, labels ${clf.labels.join(", ")})`);
  });
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e) => {
    console.error(`error: ${e.message}`);
    process.exit(1);
  });
}
