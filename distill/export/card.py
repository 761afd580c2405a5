"""The README.md of an export folder: what an app developer needs to call the model from Python, Kotlin
(Android), Swift (iOS) and JavaScript with onnxruntime. Names, dtypes, label order and max length are filled
in from the exported graph and labels.json, so the snippets match the files beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distill.formatting import megabytes, pct
from distill.metrics import engine_rows

MEANING = {
    "input_ids": "token ids from tokenizer.json: [CLS] text [SEP], then padding",
    "attention_mask": "1 for a real token, 0 for padding",
    "token_type_ids": "all 0 (one text per row)",
    "logits": "unnormalised scores in label order; softmax gives probabilities",
}


def _shape(spec: dict) -> str:
    return "[" + ", ".join(str(d) for d in spec["shape"]) + "]"


def _figures(metrics: dict[str, Any]) -> list[str]:
    rows = ["| engine | size | ms/text, batch 1 | texts/s, batch 32 | validation accuracy |", "|---|---|---|---|---|"]
    for e in engine_rows(metrics):
        rows.append(f"| {e['name']} | {megabytes(e.get('size_bytes'))} | {e['latency_ms_batch1']:.2f} | "
                    f"{e['items_per_second_batch32']:.0f} | {pct(e.get('val_accuracy'))} |")
    rows.append("")
    rows.append(
        f"Largest logit difference ONNX fp32 vs PyTorch: {metrics.get('max_abs_diff', 0):.1e} "
        f"(batches of 1-32, short texts and texts cut at max length). Timings on the export machine with "
        f"{metrics.get('threads')} thread(s), best of 3 passes, tokenization not included; batches of 32 group "
        f"texts of similar length, as `distill.runtime.Predictor` does."
    )
    if metrics.get("int8_accuracy_note"):
        rows += ["", f"**Note:** {metrics['int8_accuracy_note']}"]
    return rows


def card(meta: dict[str, Any], metrics: dict[str, Any], train_dir: Path) -> str:
    labels, max_len, default = meta["labels"], meta["max_length"], meta["default_model"]
    tensors, inputs = meta["tensors"], meta["inputs"]
    with_tok = "model.with_tokenizer.onnx" in meta.get("files", [])
    q = meta.get("quantization", {})
    lines = [
        "# Text classifier (ONNX), exported by distill",
        "",
        f"Trained in `{train_dir}`. Runs wherever onnxruntime runs: a server, a phone, a browser.",
        "",
        f"- Labels, in logit order: {', '.join(f'{i} `{lab}`' for i, lab in enumerate(labels))}",
        f"- Max sequence length: {max_len} tokens, special tokens included; longer texts are cut (the first "
        f"{max_len - 1} tokens + the closing special token).",
        f"- Default model: `{default}`"
        + (
            f" (int8 dynamic quantization, per-channel, preset `{q.get('target')}`"
            + {"ffn-out-fp32": ", feed-forward outputs kept in fp32 for accuracy)",
               "all-reduce-range": ", int8 weights over 7 bits so AVX2 kernels do not saturate)"}.get(q.get("recipe"), ")")
            if q.get("type") == "int8"
            else " (fp32)"
        ),
        *(
            [f"- Accuracy and speed below were measured on the export machine ({metrics.get('machine')}); int8 "
             "kernels on an ARM phone differ slightly, so check a few predictions on the device."]
            if q.get("target") == "arm64" and q.get("type") == "int8"
            else []
        ),  # fmt: skip
        "- Graph: " + ("fused by ONNX Runtime's transformer optimizer (com.microsoft ops; needs onnxruntime)"
                        if meta.get("graph_optimized") else "standard ONNX ops"),
        "",
        "## Files",
        "",
        "| file | what |",
        "|---|---|",
        "| `model.onnx` | fp32 model: token ids in, logits out |",
    ]
    if "model.int8.onnx" in meta.get("files", []):
        lines.append("| `model.int8.onnx` | the same, int8 weights: smaller and faster, checked for accuracy |")
    if with_tok:
        lines.append("| `model.with_tokenizer.onnx` | raw text in, probabilities out (needs onnxruntime-extensions) |")
    for f in meta.get("files", []):
        if f.endswith(".onnx.data"):  # export/large.py: a model over protobuf's 2 GB limit
            lines.append(f"| `{f}` | the weights of `{f[:-5]}` (over 2 GB, so outside the graph): ship it beside that file |")
        if f.endswith(".ort"):
            lines.append(f"| `{f}` | ORT format for onnxruntime mobile |")
    if "required_operators.config" in meta.get("files", []):
        lines.append("| `required_operators.config` | operators for a reduced onnxruntime build (`--include_ops_by_config`) |")
    lines += [
        "| `tokenizer.json` | the tokenizer (truncation and padding settings included) |",
        "| `labels.json` | label names in logit order, max length, input and output names |",
        "| `metrics.json` | parity, accuracy, latency and sizes measured at export |",
        "",
        "## Inputs and outputs",
        "",
        "| name | dtype | shape | meaning |",
        "|---|---|---|---|",
    ]
    for name, spec in tensors.items():
        lines.append(f"| `{name}` | {spec['dtype']} | {_shape(spec)} | {MEANING.get(name, '')} |")
    if with_tok:
        lines += [
            "",
            f"`model.with_tokenizer.onnx`: input `text` string [1] (ONE text per call: onnxruntime refuses more, "
            f"loop for several); outputs `probabilities` float32 [1, {len(labels)}] and `truncated` bool [1].",
        ]
    lines += ["", "## Measured at export", "", *_figures(metrics), "", *_snippets(labels, max_len, default, inputs, with_tok)]
    return "\n".join(lines) + "\n"


def _snippets(labels: list[str], max_len: int, default: str, inputs: list[str], with_tok: bool) -> list[str]:
    py_labels = "[" + ", ".join(f'"{lab}"' for lab in labels) + "]"
    col = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    py_feeds = "\n".join(f'    "{n}": np.array([e.{col[n]} for e in enc], dtype=np.int64),' for n in inputs)
    kt_vals = {"input_ids": "ids", "attention_mask": "LongArray(ids.size) { 1 }", "token_type_ids": "LongArray(ids.size)"}
    kt_feeds = "\n".join(f'        "{n}" to OnnxTensor.createTensor(env, LongBuffer.wrap({kt_vals[n]}), shape),' for n in inputs)
    sw_vals = {"input_ids": "ids", "attention_mask": "ids.map { _ in 1 }", "token_type_ids": "ids.map { _ in 0 }"}
    sw_feeds = ", ".join(f'"{n}": try tensor({sw_vals[n]})' for n in inputs)
    js_vals = {"input_ids": "ids", "attention_mask": "ids.map(() => 1)", "token_type_ids": "ids.map(() => 0)"}
    js_feeds = "\n".join(f'  {n}: new ort.Tensor("int64", BigInt64Array.from({js_vals[n]}, BigInt), [1, ids.length]),' for n in inputs)
    out = [
        "## Python",
        "",
        "```python",
        "# pip install onnxruntime tokenizers numpy   (or: from distill.runtime import Predictor)",
        "import numpy as np, onnxruntime as ort",
        "from tokenizers import Tokenizer",
        "",
        f"LABELS = {py_labels}",
        f'tok = Tokenizer.from_file("tokenizer.json")  # cuts at {max_len} tokens, pads to the longest text',
        f'session = ort.InferenceSession("{default}", providers=["CPUExecutionProvider"])',
        'enc = tok.encode_batch(["the soup was cold", "lovely staff"])',
        "feeds = {",
        py_feeds,
        "}",
        'logits = session.run(["logits"], feeds)[0]',
        "probs = np.exp(logits - logits.max(-1, keepdims=True)); probs /= probs.sum(-1, keepdims=True)",
        "print([LABELS[i] for i in probs.argmax(-1)])",
        "```",
        "",
        "## Kotlin (Android)",
        "",
        "```kotlin",
        "// implementation(\"com.microsoft.onnxruntime:onnxruntime-android:<version>\")",
        "import ai.onnxruntime.*",
        "import java.nio.LongBuffer",
        "",
        f"val LABELS = listOf({', '.join(f'{chr(34)}{lab}{chr(34)}' for lab in labels)})",
        "val env = OrtEnvironment.getEnvironment()",
        f'val session = env.createSession(context.assets.open("{default}").readBytes(), OrtSession.SessionOptions())',
        "",
        f"// ids: tokenizer.json's ids for one text, [CLS] ... [SEP], at most {max_len}",
        "fun classify(ids: LongArray): Map<String, Float> {",
        "    val shape = longArrayOf(1, ids.size.toLong())",
        "    val inputs = mapOf(",
        kt_feeds,
        "    )",
        "    session.run(inputs).use { result ->",
        '        val logits = (result.get("logits").get().value as Array<FloatArray>)[0]',
        "        val e = logits.map { Math.exp((it - logits.max()).toDouble()) }",
        "        return LABELS.indices.associate { LABELS[it] to (e[it] / e.sum()).toFloat() }",
        "    }",
        "}",
        "```",
        "",
        "## Swift (iOS)",
        "",
        "```swift",
        "// SwiftPM: onnxruntime-swift-package-manager, or CocoaPods: onnxruntime-objc",
        "import onnxruntime_objc",
        "",
        f"let labels = [{', '.join(f'{chr(34)}{lab}{chr(34)}' for lab in labels)}]",
        "let env = try ORTEnv(loggingLevel: .warning)",
        f'let path = Bundle.main.path(forResource: "{default.removesuffix(".onnx")}", ofType: "onnx")!',
        "let session = try ORTSession(env: env, modelPath: path, sessionOptions: nil)",
        "",
        "func tensor(_ values: [Int64]) throws -> ORTValue {",
        "    let data = NSMutableData(bytes: values, length: values.count * MemoryLayout<Int64>.stride)",
        "    return try ORTValue(tensorData: data, elementType: .int64, shape: [1, NSNumber(value: values.count)])",
        "}",
        "",
        f"// ids: tokenizer.json's ids for one text (e.g. swift-transformers' Tokenizers), at most {max_len}",
        "func classify(_ ids: [Int64]) throws -> [String: Float] {",
        f'    let out = try session.run(withInputs: [{sw_feeds}], outputNames: ["logits"], runOptions: nil)',
        '    let data = try out["logits"]!.tensorData() as Data',
        "    let logits = data.withUnsafeBytes { Array($0.bindMemory(to: Float32.self)) }",
        "    let e = logits.map { exp($0 - logits.max()!) }",
        "    return Dictionary(uniqueKeysWithValues: zip(labels, e.map { $0 / e.reduce(0, +) }))",
        "}",
        "```",
        "",
        "## JavaScript (browser or Node)",
        "",
        "```js",
        '// browser: import * as ort from "onnxruntime-web/wasm";  Node: import * as ort from "onnxruntime-node";',
        'import { Tokenizer } from "@huggingface/tokenizers";',
        "",
        f"const LABELS = {py_labels};",
        f'const session = await ort.InferenceSession.create("{default}");',
        'const tokenizer = new Tokenizer(await (await fetch("tokenizer.json")).json(), {});',
        f"// @huggingface/tokenizers does not truncate: keep at most {max_len} ids ({max_len - 1} + the last one)",
        'const ids = tokenizer.encode("the soup was cold").ids;',
        "const out = await session.run({",
        js_feeds,
        "});",
        "const logits = Array.from(out.logits.data);",
        "const e = logits.map((x) => Math.exp(x - Math.max(...logits)));",
        "console.log(LABELS[e.indexOf(Math.max(...e))]);",
        "```",
        "",
        "Complete, tested browser and Node examples (truncation included) live in the distill repository under "
        "`examples/web` and `examples/node`.",
    ]
    if with_tok:
        out += [
            "",
            "## No tokenizer code: `model.with_tokenizer.onnx`",
            "",
            "The tokenizer is inside the graph (onnxruntime-extensions ops). It runs in Python and on Android/iOS "
            "with the onnxruntime-extensions packages, not in prebuilt onnxruntime-web or onnxruntime-node. "
            "One text per call.",
            "",
            "```python",
            "import numpy as np, onnxruntime as ort, onnxruntime_extensions",
            "opts = ort.SessionOptions(); opts.register_custom_ops_library(onnxruntime_extensions.get_library_path())",
            'session = ort.InferenceSession("model.with_tokenizer.onnx", opts, providers=["CPUExecutionProvider"])',
            'probs, truncated = session.run(["probabilities", "truncated"], {"text": np.array(["the soup was cold"])})',
            "```",
            "",
            "```kotlin",
            "// + implementation(\"com.microsoft.onnxruntime:onnxruntime-extensions-android:<version>\")",
            "val opts = OrtSession.SessionOptions().apply { registerCustomOpLibrary(OrtxPackage.getLibraryPath()) }",
            'val session = env.createSession(context.assets.open("model.with_tokenizer.onnx").readBytes(), opts)',
            'val text = OnnxTensor.createTensor(env, arrayOf("the soup was cold"), longArrayOf(1))',
            'val probs = session.run(mapOf("text" to text)).use { (it.get("probabilities").get().value as Array<FloatArray>)[0] }',
            "```",
            "",
            "```swift",
            "// + pod 'onnxruntime-extensions-c' (RegisterCustomOps via the bridging header)",
            "let opts = try ORTSessionOptions()",
            "try opts.registerCustomOps(functionPointer: RegisterCustomOps)",
            'let session = try ORTSession(env: env, modelPath: pathOf("model.with_tokenizer.onnx"), sessionOptions: opts)',
            'let text = try ORTValue(tensorStringData: ["the soup was cold"], shape: [1])',
            'let out = try session.run(withInputs: ["text": text], outputNames: ["probabilities"], runOptions: nil)',
            "```",
        ]
    return out
