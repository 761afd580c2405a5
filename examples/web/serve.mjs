// Serve this folder (the page and its node_modules) and an export folder under /model/, on 127.0.0.1.
//
//   cd examples/web && npm ci
//   node serve.mjs EXPORT_DIR [--port 8080] [--host 127.0.0.1]      # then open http://127.0.0.1:8080/
//
// Any static file server works as well: the page only needs this folder and the export folder at URLs it
// can fetch (pass the latter as ?model=URL). This one has no dependencies and prints
// "serving http://HOST:PORT/" once it listens (with --port 0 the system picks the port).

import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".wasm": "application/wasm", // WebAssembly streaming compilation insists on this type
  ".onnx": "application/octet-stream",
  ".ort": "application/octet-stream",
  ".txt": "text/plain; charset=utf-8",
  ".png": "image/png",
};

/** The file a URL path names under root, or null when it would escape root. */
function resolveUnder(root, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return null; // malformed %-escape
  }
  const file = path.resolve(root, "." + path.posix.normalize(decoded));
  return file === root || file.startsWith(root + path.sep) ? file : null;
}

function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { port: { type: "string", default: "8080" }, host: { type: "string", default: "127.0.0.1" } },
  });
  const exportDir = positionals[0] ? path.resolve(positionals[0]) : null;
  if (!exportDir) console.warn("no export folder given: only the page is served; pass ?model=URL to it");

  const server = http.createServer(async (req, res) => {
    let { pathname } = new URL(req.url, "http://localhost");
    if (pathname.endsWith("/")) pathname += "index.html";
    const isModel = exportDir && pathname.startsWith("/model/");
    const file = isModel ? resolveUnder(exportDir, pathname.slice("/model".length)) : resolveUnder(HERE, pathname);
    const info = file && (await stat(file).catch(() => null));
    if (!info || !info.isFile()) {
      res.writeHead(404, { "content-type": "text/plain" });
      return res.end(`not found: ${pathname}\n`);
    }
    res.writeHead(200, {
      "content-type": TYPES[path.extname(file)] || "application/octet-stream",
      "content-length": info.size,
      "cache-control": "no-cache",
    });
    createReadStream(file).pipe(res);
  });
  server.listen(Number(values.port), values.host, () => {
    const { address, port } = server.address();
    console.log(`serving http://${address}:${port}/` + (exportDir ? ` (model folder ${exportDir} at /model/)` : ""));
  });
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
}

main();
