// The part the web page and the Node service share: read an export folder (labels.json, tokenizer.json,
// the ONNX model), tokenize with @huggingface/tokenizers, run onnxruntime, softmax the logits.
//
// It imports nothing itself: the caller passes its onnxruntime build (onnxruntime-web in the browser,
// onnxruntime-node on a server), the Tokenizer class, and two readers for files of the export folder.
// That keeps one copy of the logic for both runtimes.
//
//   const clf = await loadClassifier({ ort, Tokenizer, readJson, readBytes });
//   await clf.predict("the soup was cold")
//   // -> { label: "negative", probs: { negative: 0.93, positive: 0.07 }, truncated: false }

/** Read the export folder and open an inference session. `modelFile` overrides labels.json's default_model. */
export async function loadClassifier({ ort, Tokenizer, readJson, readBytes, modelFile, sessionOptions }) {
  const meta = await readJson("labels.json");
  if (!Array.isArray(meta.labels) || meta.labels.length < 2) {
    throw new Error("labels.json: 'labels' must list the label names in logit order (re-run `distill export`)");
  }
  const file = modelFile || meta.default_model || "model.onnx";
  const tokenizerJson = await readJson("tokenizer.json");
  // tokenizer_config.json is optional: tokenizer.json alone fully describes a fast tokenizer.
  const tokenizerConfig = await readJson("tokenizer_config.json").catch(() => ({}));
  const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
  const session = await ort.InferenceSession.create(await readBytes(file), sessionOptions || {});
  const maxLength = Number.isInteger(meta.max_length) ? meta.max_length : 512;
  const outputName = session.outputNames.includes("logits") ? "logits" : session.outputNames[0];
  const specials = specialTokenLayout(tokenizer);

  function encode(text) {
    const enc = tokenizer.encode(text, { return_token_type_ids: true });
    return truncate(enc, maxLength, specials);
  }

  async function predict(text) {
    const enc = encode(text);
    const n = enc.ids.length;
    // The export's inputs are int64 [batch, sequence]; feed only those the graph declares
    // (token_type_ids exists for BERT-like models only).
    const columns = { input_ids: enc.ids, attention_mask: enc.attention_mask, token_type_ids: enc.token_type_ids };
    const feeds = {};
    for (const name of session.inputNames) {
      if (!(name in columns)) throw new Error(`${file}: unexpected model input '${name}'`);
      const values = columns[name] || new Array(n).fill(0);
      feeds[name] = new ort.Tensor("int64", BigInt64Array.from(values, BigInt), [1, n]);
    }
    const out = await session.run(feeds);
    const logits = Array.from(out[outputName].data, Number);
    if (logits.length !== meta.labels.length) {
      throw new Error(`${file}: ${logits.length} logits but labels.json names ${meta.labels.length} labels`);
    }
    const p = softmax(logits);
    const best = p.indexOf(Math.max(...p));
    const probs = Object.fromEntries(meta.labels.map((l, i) => [l, p[i]]));
    return { label: meta.labels[best], probs, truncated: enc.truncated };
  }

  return { labels: meta.labels, maxLength, modelFile: file, inputNames: session.inputNames, encode, predict };
}

/** How many special tokens the post-processor puts before and after a single text ([CLS] x [SEP]: 1 and 1). */
function specialTokenLayout(tokenizer) {
  const probe = "a";
  const full = tokenizer.encode(probe).ids;
  const bare = tokenizer.encode(probe, { add_special_tokens: false }).ids;
  for (let start = 0; start + bare.length <= full.length; start++) {
    if (bare.every((id, i) => full[start + i] === id)) {
      return { before: start, after: full.length - start - bare.length };
    }
  }
  return { before: 0, after: 0 };
}

/**
 * Cut a long text to maxLength tokens the way the Python `tokenizers` truncation does: drop content tokens
 * from the right and keep the special tokens at both ends. (@huggingface/tokenizers has no truncation.)
 */
function truncate(enc, maxLength, { before, after }) {
  const n = enc.ids.length;
  if (n <= maxLength) return { ...enc, truncated: false };
  const keep = maxLength - before - after;
  const cut = (a) => (a ? a.slice(0, before + keep).concat(a.slice(n - after)) : a);
  return {
    ids: cut(enc.ids),
    attention_mask: cut(enc.attention_mask),
    token_type_ids: cut(enc.token_type_ids),
    tokens: cut(enc.tokens),
    truncated: true,
  };
}

function softmax(logits) {
  const m = Math.max(...logits);
  const e = logits.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}
