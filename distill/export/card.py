"""The README.md of an export folder: what an app developer needs to call the model from Python, Kotlin
(Android), Swift (iOS) and JavaScript with onnxruntime. The text is the template card.md (and
card_with_tokenizer.md), shipped as package data; names, dtypes, label order and max length are filled in
from the exported graph and labels.json, so the snippets match the files beside them.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from distill.formatting import megabytes, pct
from distill.metrics import engine_rows

WITH_TOKENIZER = "model.with_tokenizer.onnx"

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
    """The export folder's README.md, from card.md (and card_with_tokenizer.md when that model was written)."""
    labels, max_len, default, inputs = meta["labels"], meta["max_length"], meta["default_model"], meta["inputs"]
    with_tok = WITH_TOKENIZER in meta.get("files", [])
    q = meta.get("quantization", {})
    arm = q.get("target") == "arm64" and q.get("type") == "int8"
    values = {
        "train_dir": train_dir,
        "labels_in_order": ", ".join(f"{i} `{lab}`" for i, lab in enumerate(labels)),
        "max_len": max_len,
        "max_len_minus_1": max_len - 1,
        "default": default,
        "default_stem": default.removesuffix(".onnx"),
        "quantization": _quantization(q),
        "arm_note": (f"- Accuracy and speed below were measured on the export machine ({metrics.get('machine')}); int8 "
                     "kernels on an ARM phone differ slightly, so check a few predictions on the device.\n") if arm else "",
        "graph": ("fused by ONNX Runtime's transformer optimizer (com.microsoft ops; needs onnxruntime)"
                  if meta.get("graph_optimized") else "standard ONNX ops"),
        "file_rows": "\n".join(_file_rows(meta.get("files", []))),
        "tensor_rows": "\n".join(f"| `{name}` | {spec['dtype']} | {_shape(spec)} | {MEANING.get(name, '')} |"
                                 for name, spec in meta["tensors"].items()),
        "with_tokenizer_io": (f"\n\n`{WITH_TOKENIZER}`: input `text` string [1] (ONE text per call: onnxruntime refuses "
                              f"more, loop for several); outputs `probabilities` float32 [1, {len(labels)}] and `truncated` "
                              "bool [1].") if with_tok else "",
        "figures": "\n".join(_figures(metrics)),
        "with_tokenizer_snippets": "\n\n" + _template("card_with_tokenizer.md").rstrip("\n") if with_tok else "",
        **_feeds(labels, inputs),
    }
    return Template(_template("card.md")).substitute(values)


def _template(name: str) -> str:
    return resources.files("distill.export").joinpath(name).read_text(encoding="utf-8")


def _quantization(q: dict[str, Any]) -> str:
    if q.get("type") != "int8":
        return " (fp32)"
    why = {"ffn-out-fp32": ", feed-forward outputs kept in fp32 for accuracy)",
           "all-reduce-range": ", int8 weights over 7 bits so AVX2 kernels do not saturate)"}.get(q.get("recipe"), ")")
    return f" (int8 dynamic quantization, per-channel, preset `{q.get('target')}`{why}"


def _file_rows(files: list[str]) -> list[str]:
    rows = ["| `model.onnx` | fp32 model: token ids in, logits out |"]
    if "model.int8.onnx" in files:
        rows.append("| `model.int8.onnx` | the same, int8 weights: smaller and faster, checked for accuracy |")
    if WITH_TOKENIZER in files:
        rows.append(f"| `{WITH_TOKENIZER}` | raw text in, probabilities out (needs onnxruntime-extensions) |")
    for f in files:
        if f.endswith(".onnx.data"):  # export/large.py: a model over protobuf's 2 GB limit
            rows.append(f"| `{f}` | the weights of `{f[:-5]}` (over 2 GB, so outside the graph): ship it beside that file |")
        if f.endswith(".ort"):
            rows.append(f"| `{f}` | ORT format for onnxruntime mobile |")
    if "required_operators.config" in files:
        rows.append("| `required_operators.config` | operators for a reduced onnxruntime build (`--include_ops_by_config`) |")
    return rows


def _feeds(labels: list[str], inputs: list[str]) -> dict[str, str]:
    """The label lists and the model inputs of each language's snippet, for the inputs this graph takes."""
    col = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
    kt = {"input_ids": "ids", "attention_mask": "LongArray(ids.size) { 1 }", "token_type_ids": "LongArray(ids.size)"}
    sw = {"input_ids": "ids", "attention_mask": "ids.map { _ in 1 }", "token_type_ids": "ids.map { _ in 0 }"}
    js = {"input_ids": "ids", "attention_mask": "ids.map(() => 1)", "token_type_ids": "ids.map(() => 0)"}
    return {
        "py_labels": "[" + ", ".join(f'"{lab}"' for lab in labels) + "]",
        "quoted_labels": ", ".join(f'"{lab}"' for lab in labels),
        "py_feeds": "\n".join(f'    "{n}": np.array([e.{col[n]} for e in enc], dtype=np.int64),' for n in inputs),
        "kt_feeds": "\n".join(f'        "{n}" to OnnxTensor.createTensor(env, LongBuffer.wrap({kt[n]}), shape),' for n in inputs),
        "sw_feeds": ", ".join(f'"{n}": try tensor({sw[n]})' for n in inputs),
        "js_feeds": "\n".join(f'  {n}: new ort.Tensor("int64", BigInt64Array.from({js[n]}, BigInt), [1, ids.length]),'
                              for n in inputs),
    }
